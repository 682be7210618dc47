/* The all-reduce wrapper and the bucketed gradient reducer (dist/), and synchronised batch norm
 * (ops/batchnorm_sync.c). In one process: bucket plans (boundaries at parameter boundaries, sizes,
 * explicit cuts with empty buckets) and the one-process world. Then the same binary runs itself
 * under `mpirun -np 2` and `-np 3` (--worker): sums of odd sizes (0, 1, 3, 1023, 2^20 + 7) equal to
 * the exact sums, reducer buckets under readiness orders that differ between ranks, empty buckets,
 * a NaN on one rank reaching every rank, and sync batch norm over the ranks' shards equal to the
 * one-process kernels on the whole batch. Skips the mpirun part with one line without MPI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/params.h"
#include "dist/dist.h"
#include "ops/batchnorm_sync.h"
#include "ops/kernels.h"
#include "tests/util_test.h"

static ky_dist dist;   /* this process's world (one process, or a rank under mpirun) */

/* Parameters of odd sizes: 1, 3, 1023, 64, 7, 4097, 2, 130 floats. */
static const int sizes[] = {1, 3, 1023, 64, 7, 4097, 2, 130};
enum { NP = sizeof sizes / sizeof sizes[0] };

static void make_params(ky_params *ps) {
  ky_params_init(ps, 1);
  for (int i = 0; i < NP; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    assert_int_equal(ky_params_add(ps, NULL, name, 1, &sizes[i]), KY_OK);
  }
  assert_int_equal(ky_params_alloc(ps, KY_DEV_CPU, NULL), KY_OK);
}

/* Integer-valued floats, so every summation order gives the exact sum. */
static float val(int rank, size_t i) { return (float)((int)((i * 7 + (size_t)rank * 13) % 101) - 50); }

static void test_bucket_plans(void **st) {
  ky_params ps;
  make_params(&ps);
  ky_reducer *r;
  size_t b[NP + 2];
  /* 0 bytes: one bucket per parameter. */
  assert_int_equal(ky_reducer_create(&r, &dist, &ps, 0), KY_OK);
  assert_int_equal(ky_reducer_buckets(r, b), NP);
  for (int i = 0; i < NP; i++) assert_int_equal(b[i], ps.p[i].offset);
  assert_int_equal(b[NP], ps.total);
  ky_reducer_free(r);
  /* Huge: one bucket over the block. */
  assert_int_equal(ky_reducer_create(&r, &dist, &ps, (size_t)1 << 30), KY_OK);
  assert_int_equal(ky_reducer_buckets(r, b), 1);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[1], ps.total);
  ky_reducer_free(r);
  /* 4 KB (1024 floats), cut from the end: [p7 p6 p5] >= 4 KB, then [p4 p3 p2], then [p1 p0]
   * (the first bucket is the smaller remainder). */
  assert_int_equal(ky_reducer_create(&r, &dist, &ps, 4096), KY_OK);
  int nb = ky_reducer_buckets(r, b);
  assert_int_equal(nb, 3);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[1], ps.p[2].offset);
  assert_int_equal(b[2], ps.p[5].offset);
  assert_int_equal(b[3], ps.total);
  ky_reducer_free(r);
  /* Explicit cuts with empty buckets; bad cuts are errors. */
  int cuts[] = {0, 0, 3, 3, 3, NP, NP};
  assert_int_equal(ky_reducer_create_cuts(&r, &dist, &ps, 0, cuts, 7), KY_OK);
  assert_int_equal(ky_reducer_buckets(r, b), 6);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[1], 0);
  assert_int_equal(b[2], ps.p[3].offset);
  assert_int_equal(b[6], ps.total);
  ky_reducer_free(r);
  int bad[] = {0, 4, 2, NP};
  assert_int_equal(ky_reducer_create_cuts(&r, &dist, &ps, 0, bad, 4), KY_ERR_ARG);
  int short_cuts[] = {0, 4};
  assert_int_equal(ky_reducer_create_cuts(&r, &dist, &ps, 0, short_cuts, 2), KY_ERR_ARG);
  assert_int_equal(ky_reducer_ready(NULL, 0), KY_ERR_ARG);
  ky_params_free(&ps);
}

static void test_shard(void **st) {
  /* Shares cover 0..n-1 in rank order, differ by at most one, the first n % size take more. */
  for (int n = 1; n <= 17; n++)
    for (int size = 1; size <= n; size++) {
      int next = 0;
      for (int r = 0; r < size; r++) {
        int lo, hi;
        ky_dist_shard(&lo, &hi, n, r, size);
        assert_int_equal(lo, next);
        assert_int_equal(hi - lo, n / size + (r < n % size));
        next = hi;
      }
      assert_int_equal(next, n);
    }
  assert_int_not_equal(ky_dist_hash(0, "a", 1), ky_dist_hash(0, "b", 1));
}

/* --- under mpirun: every rank runs these; any failure fails the job */

static void test_sums_of_odd_sizes(void **st) {
  static const size_t ns[] = {0, 1, 3, 1023, ((size_t)1 << 20) + 7};
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    size_t n = ns[k];
    float *f = malloc(n * sizeof *f + 4);
    double *d = malloc(n * sizeof *d + 8);
    for (size_t i = 0; i < n; i++) { f[i] = val(dist.rank, i); d[i] = val(dist.rank, i) * 0.5; }
    assert_int_equal(ky_dist_sum_f32(&dist, f, n), KY_OK);
    assert_int_equal(ky_dist_sum_f64(&dist, d, n), KY_OK);
    for (size_t i = 0; i < n; i++) {
      double want = 0;
      for (int r = 0; r < dist.size; r++) want += val(r, i);
      if (f[i] != (float)want || d[i] != want * 0.5) fail_msg("n %zu, i %zu: %g / %g, expected %g", n, i, f[i], d[i], want);
    }
    free(f);
    free(d);
  }
  /* A NaN on the last rank reaches every rank (how a NaN anywhere stops every rank). */
  float x[3] = {1, 2, dist.rank == dist.size - 1 ? NAN : 3};
  assert_int_equal(ky_dist_sum_f32(&dist, x, 3), KY_OK);
  assert_true(isnan(x[2]));
  assert_true(x[0] == (float)dist.size);
  /* Broadcast and agreement. */
  int v = dist.rank == 0 ? 1234 : -1;
  assert_int_equal(ky_dist_bcast(&dist, &v, sizeof v, 0), KY_OK);
  assert_int_equal(v, 1234);
  assert_int_equal(ky_dist_check_same(&dist, 42, "value"), KY_OK);
  if (dist.size > 1) assert_int_equal(ky_dist_check_same(&dist, dist.rank == 1 ? 7 : 42, "value"), KY_ERR_STATE);
}

/* Fills the gradients, marks parameters ready in an order that depends on the rank and the
 * round, finishes, checks the exact sums. */
static void reduce_round(ky_reducer *r, ky_params *ps, int round) {
  for (size_t i = 0; i < ps->total; i++) ps->grad[i] = val(dist.rank + round, i);
  ky_reducer_reset(r);
  int order[NP];
  for (int i = 0; i < NP; i++) order[i] = i;
  unsigned s = (unsigned)(dist.rank * 31 + round * 7 + 1);
  for (int i = NP - 1; i > 0; i--) {
    s = s * 1103515245u + 12345u;
    int j = (int)((s >> 8) % (unsigned)(i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  /* Some parameters never become ready before finish (as parameters the tape did not reach). */
  int skip = round % 3;
  for (int i = 0; i < NP - skip; i++) assert_int_equal(ky_reducer_ready(r, order[i]), KY_OK);
  assert_int_equal(ky_reducer_ready(r, order[0]), KY_OK);   /* twice: no effect */
  assert_int_equal(ky_reducer_finish(r, NULL), KY_OK);
  for (size_t i = 0; i < ps->total; i++) {
    double want = 0;
    for (int q = 0; q < dist.size; q++) want += val(q + round, i);
    if (ps->grad[i] != (float)want) fail_msg("round %d, float %zu: %g, expected %g", round, i, ps->grad[i], want);
  }
}

static void test_reducer_buckets(void **st) {
  ky_params ps;
  make_params(&ps);
  size_t bytes[] = {0, 100, 4096, 20000, (size_t)1 << 30};
  for (size_t k = 0; k < sizeof bytes / sizeof bytes[0]; k++) {
    ky_reducer *r;
    assert_int_equal(ky_reducer_create(&r, &dist, &ps, bytes[k]), KY_OK);
    for (int round = 0; round < 4; round++) reduce_round(r, &ps, round);
    ky_reducer_free(r);
  }
  int cuts[] = {0, 0, 3, 3, 3, NP, NP};   /* empty buckets first, between and last */
  ky_reducer *r;
  assert_int_equal(ky_reducer_create_cuts(&r, &dist, &ps, 0, cuts, 7), KY_OK);
  for (int round = 0; round < 4; round++) reduce_round(r, &ps, round);
  ky_reducer_free(r);
  ky_params_free(&ps);
}

/* Sync batch norm on this rank's pixels equals the one-process kernels on all of them. */
static void test_sync_batchnorm(void **st) {
  enum { C = 70, NPIX = 37 };   /* 70 channels: over one 64-channel block of the fused kernel */
  size_t all = (size_t)NPIX * C;
  float *x = malloc(all * 4), *dy = malloc(all * 4), *y = malloc(all * 4), *dx = calloc(all, 4);
  float g[C], b[C], rm[C], rv[C], m[C], is[C], dg[C] = {0}, db[C] = {0};
  float rm2[C], rv2[C], m2[C], is2[C], dg2[C] = {0}, db2[C] = {0};
  for (size_t i = 0; i < all; i++) {
    x[i] = (float)sin(0.37 * (double)i) * 3 + (float)(i % C) * 0.1f;
    dy[i] = (float)cos(0.11 * (double)i);
  }
  for (int j = 0; j < C; j++) { g[j] = 1 + 0.01f * j; b[j] = 0.1f * j; rm[j] = rm2[j] = 0.5f; rv[j] = rv2[j] = 2; }
  ky_cpu_bn_fwd_train(NULL, y, m, is, rm, rv, x, g, b, NPIX, C, 1e-5f, 0.1f);
  ky_cpu_bn_bwd_train(NULL, dx, dg, db, dy, x, g, m, is, NPIX, C);
  int lo, hi;
  ky_dist_shard(&lo, &hi, NPIX, dist.rank, dist.size);
  size_t n = (size_t)(hi - lo), o = (size_t)lo * C;
  float *y2 = malloc(n * C * 4 + 4), *dx2 = calloc(n * C + 1, 4);
  ky_ctx ctx;
  assert_int_equal(ky_ctx_init(&ctx, KY_DEV_CPU, 0), KY_OK);
  ctx.dist = &dist;
  dist.sync_bn = 1;
  assert_int_equal(ky_bn_sync_on(&ctx), dist.mpi);
  double count;
  assert_int_equal(ky_bn_sync_fwd(&ctx, y2, m2, is2, &count, rm2, rv2, x + o, g, b, n, C, 1e-5f, 0.1f), KY_OK);
  assert_true(count == NPIX);
  assert_int_equal(ky_bn_sync_bwd(&ctx, dx2, dg2, db2, dy + o, x + o, g, m2, is2, count, n, C), KY_OK);
  assert_int_equal(ky_dist_sum_f32(&dist, dg2, C), KY_OK);   /* the gradient all-reduce's part */
  assert_int_equal(ky_dist_sum_f32(&dist, db2, C), KY_OK);
  /* Statistics: double sums split over ranks, then rounded to float: equal or one ulp apart. */
  assert_true(ky_test_max_err(m2, m, C, 0, 1e-6, NULL) <= 1);
  assert_true(ky_test_max_err(is2, is, C, 0, 1e-6, NULL) <= 1);
  assert_true(ky_test_max_err(rm2, rm, C, 0, 1e-6, NULL) <= 1);
  assert_true(ky_test_max_err(rv2, rv, C, 0, 1e-6, NULL) <= 1);
  assert_true(ky_test_max_err(y2, y + o, n * C, 1e-6, 1e-5, NULL) <= 1);
  assert_true(ky_test_max_err(dx2, dx + o, n * C, 1e-6, 1e-5, NULL) <= 1);
  assert_true(ky_test_max_err(dg2, dg, C, 1e-6, 1e-5, NULL) <= 1);
  assert_true(ky_test_max_err(db2, db, C, 1e-6, 1e-5, NULL) <= 1);
  dist.sync_bn = 0;
  ky_ctx_free(&ctx);
  free(x); free(dy); free(y); free(dx); free(y2); free(dx2);
}

static void test_under_mpirun(void **st) {
#ifndef KY_HAVE_MPI
  printf("test_dist_allreduce: SKIPPED the mpirun part: this build has no MPI (install libopenmpi-dev openmpi-bin: "
         "`make deps`, then rebuild)\n");
  skip();
#else
  if (system("command -v mpirun >/dev/null 2>&1") != 0) {
    printf("test_dist_allreduce: SKIPPED the mpirun part: mpirun not found (install openmpi-bin: `make deps`)\n");
    skip();
  }
  char self[512];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(k > 0);
  self[k] = 0;
  char cwd[300];
  if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
  for (int np = 2; np <= 3; np++) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
             "LSAN_OPTIONS=suppressions=%s/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0 mpirun -np %d %s --worker",
             cwd, np, self);
    int rc = system(cmd);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) fail_msg("%d ranks: the worker job failed (status %d)", np, rc);
  }
#endif
}

int main(int argc, char **argv) {
  int worker = argc > 1 && !strcmp(argv[1], "--worker");
  if (ky_dist_init(&dist, &argc, &argv) != KY_OK) { fprintf(stderr, "%s\n", ky_last_error()); return 1; }
  int rc;
  if (worker) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_of_odd_sizes),
        cmocka_unit_test(test_reducer_buckets),
        cmocka_unit_test(test_sync_batchnorm),
    };
    char name[64];
    snprintf(name, sizeof name, "dist_allreduce rank %d of %d", dist.rank, dist.size);
    rc = cmocka_run_group_tests_name(name, tests, NULL, NULL);
  } else {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_plans),
        cmocka_unit_test(test_shard),
        cmocka_unit_test(test_sums_of_odd_sizes),
        cmocka_unit_test(test_reducer_buckets),
        cmocka_unit_test(test_sync_batchnorm),
        cmocka_unit_test(test_under_mpirun),
    };
    rc = cmocka_run_group_tests_name("dist_allreduce", tests, NULL, NULL);
  }
  ky_dist_finalize(&dist);
  return rc;
}
