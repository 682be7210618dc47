/* The rank's job (MPI when launched, a one-process world otherwise) and the blocking collectives
 * (see dist/dist.h). Tested by tests/test_dist_allreduce.c and tests/test_dist_train.c. */
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KY_HAVE_MPI
#include <mpi.h>
#endif
#ifdef KY_HAVE_NCCL
#include "cuda/nccl.h"
#endif

#define KY_STR_(x) #x
#define KY_STR(x) KY_STR_(x)

const char *ky_dist_mpi_version(void) {
#if defined(KY_HAVE_MPI) && defined(OMPI_MAJOR_VERSION)
  return "Open MPI " KY_STR(OMPI_MAJOR_VERSION) "." KY_STR(OMPI_MINOR_VERSION) "." KY_STR(OMPI_RELEASE_VERSION);
#elif defined(KY_HAVE_MPI)
  return "MPI " KY_STR(MPI_VERSION) "." KY_STR(MPI_SUBVERSION);
#else
  return "none";
#endif
}

const char *ky_dist_nccl_version(void) {
#ifdef KY_HAVE_NCCL
  return ky_nccl_version();
#else
  return "none";
#endif
}

/* The job size a launcher put in the environment (Open MPI's mpirun, MPICH/Hydra or Slurm PMI,
 * Slurm with PMIx), or 0 when no launcher started this process. */
static int env_size(void) {
  static const char *const keys[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL};
  for (const char *const *k = keys; *k; k++) {
    const char *v = getenv(*k);
    if (v && atoi(v) > 0) return atoi(v);
  }
  const char *v = getenv("SLURM_NTASKS");
  if (v && getenv("PMIX_RANK") && atoi(v) > 0) return atoi(v);
  return 0;
}

int ky_dist_launched(void) { return env_size() > 0; }

ky_status ky_dist_init(ky_dist *d, int *argc, char ***argv) {
  KY_CHECK_NULL(d, "dist");
  memset(d, 0, sizeof *d);
  d->size = d->local_size = 1;
  if (!ky_dist_launched()) return KY_OK;
#ifdef KY_HAVE_MPI
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return ky_error(KY_ERR_STATE, "dist: MPI_Init_thread failed (launched by %s as one of %d processes)",
                    getenv("OMPI_COMM_WORLD_SIZE") ? "mpirun" : "a launcher", env_size());
  d->mpi = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d->size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &d->local_rank);
  MPI_Comm_size(local, &d->local_size);
  MPI_Comm_free(&local);
  return KY_OK;
#else
  (void)argc;
  (void)argv;
  return ky_error(KY_ERR_STATE,
                  "dist: started by a launcher as one of %d processes, but this karyon was built without MPI "
                  "(install libopenmpi-dev and rebuild; `karyon info` lists what a build has)", env_size());
#endif
}

void ky_dist_finalize(ky_dist *d) {
  if (!d) return;
#ifdef KY_HAVE_NCCL
  if (d->nccl) ky_nccl_free(d->nccl);
  d->nccl = NULL;
#endif
#ifdef KY_HAVE_MPI
  if (d->mpi) MPI_Finalize();
#endif
  d->mpi = 0;
}

void ky_dist_abort(ky_dist *d, int code) {
#ifdef KY_HAVE_MPI
  if (d && d->mpi && d->size > 1) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
#endif
  (void)d;
  (void)code;
}

#ifdef KY_HAVE_MPI
/* MPI counts are int: long buffers go in pieces. */
static ky_status sum_mpi(void *buf, size_t n, MPI_Datatype t, size_t elem) {
  const size_t max = (size_t)1 << 30;
  for (size_t o = 0; o < n; o += max) {
    size_t k = n - o < max ? n - o : max;
    if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * elem, (int)k, t, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      return ky_error(KY_ERR_STATE, "dist: MPI_Allreduce of %zu values failed", k);
  }
  return KY_OK;
}
#endif

static ky_status sum_any(ky_dist *d, void *buf, size_t n, int dbl) {
  KY_CHECK_NULL(d, "dist");
  KY_CHECK(buf || !n, KY_ERR_ARG, "dist: sum of %zu values from a NULL buffer", n);
#ifdef KY_HAVE_MPI
  if (d->mpi && d->size > 1) return sum_mpi(buf, n, dbl ? MPI_DOUBLE : MPI_FLOAT, dbl ? sizeof(double) : sizeof(float));
#endif
  (void)dbl;
  return KY_OK;
}

ky_status ky_dist_sum_f32(ky_dist *d, float *buf, size_t n) { return sum_any(d, buf, n, 0); }
ky_status ky_dist_sum_f64(ky_dist *d, double *buf, size_t n) { return sum_any(d, buf, n, 1); }

ky_status ky_dist_barrier(ky_dist *d) {
  KY_CHECK_NULL(d, "dist");
#ifdef KY_HAVE_MPI
  if (d->mpi && d->size > 1 && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
    return ky_error(KY_ERR_STATE, "dist: MPI_Barrier failed");
#endif
  return KY_OK;
}

ky_status ky_dist_bcast(ky_dist *d, void *buf, size_t bytes, int root) {
  KY_CHECK_NULL(d, "dist");
  KY_CHECK(root >= 0 && root < d->size, KY_ERR_ARG, "dist: broadcast root %d, expected 0..%d", root, d->size - 1);
#ifdef KY_HAVE_MPI
  if (d->mpi && d->size > 1) {
    const size_t max = (size_t)1 << 30;
    for (size_t o = 0; o < bytes; o += max) {
      size_t k = bytes - o < max ? bytes - o : max;
      if (MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
        return ky_error(KY_ERR_STATE, "dist: MPI_Bcast of %zu bytes failed", k);
    }
  }
#endif
  return KY_OK;
}

ky_status ky_dist_check_same(ky_dist *d, uint64_t value, const char *what) {
  KY_CHECK_NULL(d, "dist");
#ifdef KY_HAVE_MPI
  if (d->mpi && d->size > 1) {
    uint64_t *all = malloc((size_t)d->size * sizeof *all);
    if (!all) return ky_error(KY_ERR_NOMEM, "dist: out of memory");
    MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int bad = -1;
    for (int r = 1; r < d->size && bad < 0; r++) if (all[r] != all[0]) bad = r;
    uint64_t v0 = all[0], vb = bad >= 0 ? all[bad] : 0;
    free(all);
    if (bad >= 0)
      return ky_error(KY_ERR_STATE, "dist: rank %d's %s differs from rank 0's (hash %016llx, rank 0 %016llx): every rank "
                      "must run the same karyon build with the same options", bad, what, (unsigned long long)vb,
                      (unsigned long long)v0);
  }
#endif
  (void)what;
  (void)value;
  return KY_OK;
}

uint64_t ky_dist_hash(uint64_t h, const void *p, size_t n) {
  if (!h) h = 1469598103934665603ull;
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

void ky_dist_shard(int *lo, int *hi, int n, int rank, int size) {
  int q = n / size, r = n % size;
  *lo = rank * q + (rank < r ? rank : r);
  *hi = *lo + q + (rank < r);
}

ky_status ky_dist_nccl_init(ky_dist *d, struct ky_cuda *cu) {
  KY_CHECK_NULL(d, "dist");
  if (!d->mpi || d->nccl) return KY_OK;
#ifdef KY_HAVE_NCCL
  unsigned char id[KY_NCCL_ID_BYTES];
  memset(id, 0, sizeof id);
  if (d->rank == 0) KY_TRY(ky_nccl_unique_id(id));
  KY_TRY(ky_dist_bcast(d, id, sizeof id, 0));
  return ky_nccl_init(&d->nccl, cu, id, d->rank, d->size);
#else
  (void)cu;
  return KY_OK;   /* CUDA gradients then go through host memory and MPI (dist/reducer.c) */
#endif
}
