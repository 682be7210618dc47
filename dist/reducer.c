/* Bucketed gradient all-reduce overlapped with the backward pass (see dist/dist.h): host blocks go
 * through MPI_Iallreduce (driven by MPI_Testall from the backward hook, since Open MPI progresses
 * non-blocking collectives only inside MPI calls); CUDA blocks through NCCL on a side stream, or,
 * in a build without NCCL, through a host copy and one MPI sum after the backward pass.
 * Tested by tests/test_dist_allreduce.c and tests/test_dist_train.c. */
#include "dist/dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ctx.h"
#ifdef KY_HAVE_MPI
#include <mpi.h>
#endif
#ifdef KY_HAVE_NCCL
#include "cuda/nccl.h"
#endif

struct ky_reducer {
  ky_dist *d;
  ky_params *ps;
  int nb;
  int *first;        /* [nb + 1] parameter index where each bucket starts */
  size_t *bounds;    /* [nb + 1] float offsets in the block */
  int *bucket_of;    /* [ps->n] */
  int *pending;      /* [nb] parameters of the bucket not ready yet */
  int *ready;        /* [ps->n] */
  int *uses;         /* [ps->n] tape nodes still to run backward that take the parameter */
  int next;          /* the highest bucket not started yet; buckets start from nb-1 down to 0 */
  int outstanding;   /* started host all-reduces not known complete */
  int staged;        /* CUDA block without NCCL: one host sum at finish */
#ifdef KY_HAVE_MPI
  MPI_Request *req;  /* [nb] */
#endif
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int multi(const ky_reducer *r) { return r->d->mpi; }

static ky_status plan(ky_reducer *r, size_t bucket_bytes, const int *cuts, int n_cuts) {
  const ky_params *ps = r->ps;
  int n = ps->n;
  r->first = malloc((size_t)(n + 2 + n_cuts) * sizeof *r->first);
  if (!r->first) return ky_error(KY_ERR_NOMEM, "reducer: out of memory");
  if (cuts) {
    /* Explicit buckets [cuts[k], cuts[k+1]) of parameter indices (tests: empty buckets). */
    KY_CHECK(n_cuts >= 2 && cuts[0] == 0 && cuts[n_cuts - 1] == n, KY_ERR_ARG,
             "reducer: bucket cuts must run from 0 to %d parameters", n);
    for (int k = 0; k < n_cuts; k++) {
      KY_CHECK(k == 0 || cuts[k] >= cuts[k - 1], KY_ERR_ARG, "reducer: bucket cut %d (%d) below the one before", k, cuts[k]);
      r->first[k] = cuts[k];
    }
    r->nb = n_cuts - 1;
    return KY_OK;
  }
  /* From the end of the block (the decoder, whose gradients the backward pass finishes first), so
   * the one smaller bucket is the first, finished last anyway. */
  int *rev = malloc((size_t)(n + 1) * sizeof *rev), nr = 0;
  if (!rev) return ky_error(KY_ERR_NOMEM, "reducer: out of memory");
  rev[nr++] = n;
  size_t acc = 0;
  for (int i = n - 1; i >= 0; i--) {
    acc += ps->p[i].numel * sizeof(float);
    if (acc >= bucket_bytes && i > 0) { rev[nr++] = i; acc = 0; }
  }
  rev[nr++] = 0;
  if (n == 0) nr = 1;   /* no parameters: no bucket */
  r->nb = nr - 1;
  for (int k = 0; k < nr; k++) r->first[k] = rev[nr - 1 - k];
  free(rev);
  return KY_OK;
}

ky_status ky_reducer_create(ky_reducer **out, ky_dist *d, ky_params *ps, size_t bucket_bytes) {
  return ky_reducer_create_cuts(out, d, ps, bucket_bytes, NULL, 0);
}

ky_status ky_reducer_create_cuts(ky_reducer **out, ky_dist *d, ky_params *ps, size_t bucket_bytes, const int *cuts,
                                 int n_cuts) {
  KY_CHECK_NULL(out, "out");
  *out = NULL;
  KY_CHECK_NULL(d, "dist");
  KY_CHECK(ps && ps->trainable && ps->grad, KY_ERR_ARG, "reducer: parameters without a gradient block");
  ky_reducer *r = calloc(1, sizeof *r);
  if (!r) return ky_error(KY_ERR_NOMEM, "reducer: out of memory");
  r->d = d;
  r->ps = ps;
  ky_status s = plan(r, bucket_bytes, cuts, n_cuts);
  int n = ps->n;
  if (s == KY_OK) {
    r->bounds = malloc((size_t)(r->nb + 1) * sizeof *r->bounds);
    r->bucket_of = malloc((size_t)(n + 1) * sizeof *r->bucket_of);
    r->pending = malloc((size_t)(r->nb + 1) * sizeof *r->pending);
    r->ready = malloc((size_t)(n + 1) * sizeof *r->ready);
    r->uses = malloc((size_t)(n + 1) * sizeof *r->uses);
#ifdef KY_HAVE_MPI
    r->req = malloc((size_t)(r->nb + 1) * sizeof *r->req);
    if (!r->req) s = ky_error(KY_ERR_NOMEM, "reducer: out of memory");
#endif
    if (!r->bounds || !r->bucket_of || !r->pending || !r->ready || !r->uses) s = ky_error(KY_ERR_NOMEM, "reducer: out of memory");
  }
  if (s == KY_OK) {
    for (int k = 0; k <= r->nb; k++) r->bounds[k] = r->first[k] < n ? ps->p[r->first[k]].offset : ps->total;
    for (int k = 0; k < r->nb; k++) {
      for (int i = r->first[k]; i < r->first[k + 1]; i++) r->bucket_of[i] = k;
      if (r->bounds[k + 1] - r->bounds[k] > (size_t)1 << 30)
        s = ky_error(KY_ERR_ARG, "reducer: bucket %d holds %zu floats, more than one MPI call takes (2^30)", k,
                     r->bounds[k + 1] - r->bounds[k]);
    }
    r->staged = ps->dev == KY_DEV_CUDA && !d->nccl;
  }
  if (s != KY_OK) { ky_reducer_free(r); return s; }
  ky_reducer_reset(r);
  *out = r;
  return KY_OK;
}

void ky_reducer_free(ky_reducer *r) {
  if (!r) return;
  free(r->first);
  free(r->bounds);
  free(r->bucket_of);
  free(r->pending);
  free(r->ready);
  free(r->uses);
#ifdef KY_HAVE_MPI
  free(r->req);
#endif
  free(r);
}

int ky_reducer_buckets(const ky_reducer *r, size_t *bounds) {
  if (bounds) memcpy(bounds, r->bounds, (size_t)(r->nb + 1) * sizeof *bounds);
  return r->nb;
}

void ky_reducer_reset(ky_reducer *r) {
  for (int k = 0; k < r->nb; k++) r->pending[k] = r->first[k + 1] - r->first[k];
  for (int i = 0; i < r->ps->n; i++) r->ready[i] = r->uses[i] = 0;
  r->next = r->nb - 1;
  r->outstanding = 0;
}

static ky_status start_bucket(ky_reducer *r, int k) {
  float *p = r->ps->grad + r->bounds[k];
  size_t n = r->bounds[k + 1] - r->bounds[k];
  r->d->comm_calls += 1;
  r->d->bytes += (double)n * sizeof(float);
  if (!multi(r) || r->staged) return KY_OK;
#ifdef KY_HAVE_NCCL
  if (r->ps->dev == KY_DEV_CUDA) return n ? ky_nccl_sum_start(r->d->nccl, p, n) : KY_OK;
#endif
#ifdef KY_HAVE_MPI
  if (MPI_Iallreduce(MPI_IN_PLACE, p, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->req[k]) != MPI_SUCCESS)
    return ky_error(KY_ERR_STATE, "reducer: MPI_Iallreduce of bucket %d (%zu floats) failed", k, n);
  r->outstanding = 1;
#else
  (void)p;
#endif
  return KY_OK;
}

/* Starts buckets from the top while the next one down is complete. */
static ky_status advance(ky_reducer *r) {
  while (r->next >= 0 && r->pending[r->next] == 0) {
    KY_TRY(start_bucket(r, r->next));
    r->next--;
  }
  return KY_OK;
}

ky_status ky_reducer_ready(ky_reducer *r, int i) {
  KY_CHECK_NULL(r, "reducer");
  KY_CHECK(i >= 0 && i < r->ps->n, KY_ERR_ARG, "reducer: parameter %d, expected 0..%d", i, r->ps->n - 1);
  if (r->ready[i]) return KY_OK;
  r->ready[i] = 1;
  r->pending[r->bucket_of[i]]--;
  return advance(r);
}

/* Index of the parameter whose gradient view is t->grad, or -1. */
static int param_of(const ky_reducer *r, const ky_tensor *t) {
  if (!t || !t->grad) return -1;
  const float *g = t->grad->data, *base = r->ps->grad;
  if (g < base || g >= base + r->ps->total) return -1;
  size_t off = (size_t)(g - base);
  int lo = 0, hi = r->ps->n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (r->ps->p[mid].offset == off) return r->ps->p[mid].t == t ? mid : -1;
    if (r->ps->p[mid].offset < off) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

static ky_status after_node(void *ud, ky_node *n) {
  ky_reducer *r = ud;
  for (int j = 0; j < n->n_in; j++) {
    int i = param_of(r, n->in[j]);
    if (i >= 0 && --r->uses[i] == 0) KY_TRY(ky_reducer_ready(r, i));
  }
#ifdef KY_HAVE_MPI
  if (r->outstanding) {
    /* Progress for the started sums (started ones only: the rest of req is not set yet). */
    int flag = 0, lo = r->next + 1;
    MPI_Testall(r->nb - lo, r->req + lo, &flag, MPI_STATUSES_IGNORE);
    if (flag) r->outstanding = 0;
  }
#endif
  return KY_OK;
}

ky_status ky_reducer_attach(ky_reducer *r, ky_ctx *ctx) {
  KY_CHECK_NULL(r, "reducer");
  KY_CHECK_NULL(ctx, "ctx");
  ky_reducer_reset(r);
  for (ky_node *n = ctx->tape.last; n; n = n->prev)
    for (int j = 0; j < n->n_in; j++) {
      int i = param_of(r, n->in[j]);
      if (i >= 0) r->uses[i]++;
    }
  ctx->after_node = after_node;
  ctx->after_node_ud = r;
  for (int i = 0; i < r->ps->n; i++)
    if (!r->uses[i]) KY_TRY(ky_reducer_ready(r, i));
  return KY_OK;
}

ky_status ky_reducer_finish(ky_reducer *r, ky_ctx *ctx) {
  KY_CHECK_NULL(r, "reducer");
  if (ctx && ctx->after_node == after_node) {
    ctx->after_node = NULL;
    ctx->after_node_ud = NULL;
  }
  r->d->early += r->nb - 1 - r->next;
  for (int i = 0; i < r->ps->n; i++) KY_TRY(ky_reducer_ready(r, i));
  double t0 = now_s();
  if (multi(r) && r->staged) {
    /* CUDA gradients without NCCL: through host memory in one sum. */
    float *h = malloc(r->ps->total * sizeof *h + 1);
    if (!h) return ky_error(KY_ERR_NOMEM, "reducer: out of memory for a %zu-float host copy", r->ps->total);
    ky_status s = ky_params_get(r->ps, h, r->ps->grad);
    if (s == KY_OK) s = ky_dist_sum_f32(r->d, h, r->ps->total);
    if (s == KY_OK) s = ky_params_set(r->ps, r->ps->grad, h);
    free(h);
    KY_TRY(s);
  }
#ifdef KY_HAVE_NCCL
  else if (multi(r) && r->ps->dev == KY_DEV_CUDA) KY_TRY(ky_nccl_sum_finish(r->d->nccl));
#endif
#ifdef KY_HAVE_MPI
  else if (multi(r) && r->nb > 0) {
    if (MPI_Waitall(r->nb, r->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
      return ky_error(KY_ERR_STATE, "reducer: waiting for the gradient all-reduce failed");
  }
#endif
  r->outstanding = 0;
  r->d->wait_s += now_s() - t0;
  r->d->steps++;
  return KY_OK;
}
