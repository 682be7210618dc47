/* Data-parallel processes: the rank's place in an MPI job (mpirun / srun), the collectives karyon
 * needs (in-place sums, broadcast, agreement checks), and the bucketed gradient reducer that starts
 * non-blocking all-reduces while the backward pass is still running. Built with MPI when `make`
 * finds mpicc (KY_HAVE_MPI), with NCCL for CUDA gradients when it also finds nccl.h and a CUDA
 * build (KY_HAVE_NCCL); without them, or when the process was not started by a launcher, every
 * call acts on a one-process world (rank 0 of 1, mpi = 0). Tested by tests/test_dist_allreduce.c (sums of odd
 * sizes, bucket boundaries, empty buckets, readiness orders, under mpirun) and
 * tests/test_dist_train.c (2 ranks against 1, determinism, a killed rank, resume with another N). */
#ifndef KY_DIST_H
#define KY_DIST_H

#include <stddef.h>
#include <stdint.h>
#include "core/params.h"
#include "core/status.h"

typedef struct ky_ctx ky_ctx;
typedef struct ky_node ky_node;
struct ky_nccl;

typedef struct ky_dist {
  int rank, size;              /* in the job; 0 of 1 for a single process */
  int local_rank, local_size;  /* on this machine (GPU choice, threads per rank) */
  int mpi;                     /* launched and joined: MPI_Init was called here; the data-parallel
                                  path runs (reducer, NCCL, sync batch norm), even with one rank */
  int sync_bn;                 /* batch norm all-reduces its batch statistics (training forms) */
  struct ky_nccl *nccl;        /* NCCL communicator for device gradients, or NULL */
  /* Statistics of the gradient reducer since the last ky_dist_stats_reset. */
  int64_t steps;
  double wait_s;               /* time blocked waiting for gradient all-reduces after backward */
  double comm_calls;           /* bucket all-reduces started */
  double bytes;                /* bytes all-reduced (per rank's buffer) */
  double early;                /* buckets started from the backward hook, before ky_reducer_finish */
} ky_dist;

/* Build facts for `karyon info` and the banner: "mpi (Open MPI v4.1.4)", "nccl 2.x" or "none". */
const char *ky_dist_mpi_version(void);
const char *ky_dist_nccl_version(void);

/* 1 when a launcher (mpirun, srun, PMI) started this process, even as a job of one: such a
 * process joins MPI and takes the data-parallel path (with one rank its sums are copies, which is
 * how one GPU exercises NCCL). */
int ky_dist_launched(void);
/* Joins the job when launched (MPI_Init_thread, funneled), else fills a one-process world without
 * touching MPI. A launched process in a build without MPI is an error that says so. */
ky_status ky_dist_init(ky_dist *d, int *argc, char ***argv);
/* Leaves the job (MPI_Finalize when joined). */
void ky_dist_finalize(ky_dist *d);
/* Ends every rank of the job now (MPI_Abort); in a one-process world it returns. */
void ky_dist_abort(ky_dist *d, int code);

/* Rank 0 makes an NCCL id, MPI broadcasts it, every rank joins the communicator on its GPU (cu).
 * Without NCCL in the build it does nothing: CUDA gradients then travel through host memory. */
struct ky_cuda;
ky_status ky_dist_nccl_init(ky_dist *d, struct ky_cuda *cu);

/* Waits for every rank. */
ky_status ky_dist_barrier(ky_dist *d);
/* Blocking in-place sums over the ranks of host buffers; n may be 0. */
ky_status ky_dist_sum_f32(ky_dist *d, float *buf, size_t n);
ky_status ky_dist_sum_f64(ky_dist *d, double *buf, size_t n);
/* Rank root's bytes to every rank. */
ky_status ky_dist_bcast(ky_dist *d, void *buf, size_t bytes, int root);
/* Every rank passes its value; an error names the first rank whose value differs from rank 0's
 * and `what` ("config", "build"). */
ky_status ky_dist_check_same(ky_dist *d, uint64_t value, const char *what);
/* 64-bit FNV-1a of bytes, chained from h (start with 0). */
uint64_t ky_dist_hash(uint64_t h, const void *p, size_t n);

/* This rank's share [*lo, *hi) of n items split contiguously over size ranks: the first n % size
 * ranks take one more. Concatenating the shares in rank order gives 0..n-1. */
void ky_dist_shard(int *lo, int *hi, int n, int rank, int size);

/* --- bucketed gradient reducer. The flat gradient block of `ps` is cut at parameter boundaries
 * into buckets of at least bucket_bytes, cut from the end of the block (the first may be smaller; 0 gives one bucket per
 * parameter). A bucket's sum starts (MPI_Iallreduce, or ncclAllReduce on a side stream for CUDA
 * blocks) as soon as all its parameters are ready and every bucket after it has started, so every
 * rank issues the same collectives in the same order whatever order readiness comes in. */
typedef struct ky_reducer ky_reducer;

ky_status ky_reducer_create(ky_reducer **r, ky_dist *d, ky_params *ps, size_t bucket_bytes);
/* The same with explicit buckets: bucket k holds parameters [cuts[k], cuts[k+1]) (cuts[0] = 0,
 * cuts[n_cuts-1] = ps->n, non-decreasing: equal cuts make empty buckets). */
ky_status ky_reducer_create_cuts(ky_reducer **r, ky_dist *d, ky_params *ps, size_t bucket_bytes, const int *cuts,
                                 int n_cuts);
void ky_reducer_free(ky_reducer *r);
int ky_reducer_buckets(const ky_reducer *r, size_t *bounds /* [n+1] floats, may be NULL */);
/* Starts a step: every parameter not ready. */
void ky_reducer_reset(ky_reducer *r);
/* Marks parameter i (index in ps) ready; starts the buckets this completes. */
ky_status ky_reducer_ready(ky_reducer *r, int i);
/* Reads the recorded tape of ctx: each parameter becomes ready after the last node (in backward
 * order) that takes it as an input, through the context's backward hook, which this installs
 * (ky_reducer_finish removes it). Call between the forward pass and ky_backward. */
ky_status ky_reducer_attach(ky_reducer *r, ky_ctx *ctx);
/* Starts what has not started (parameters the tape never reached), waits for every sum, and
 * removes the hook: the gradient block then holds the sum over the ranks. */
ky_status ky_reducer_finish(ky_reducer *r, ky_ctx *ctx);

#endif
