/* NCCL communicator and overlapped in-place sums for CUDA gradients (see cuda/nccl.h). Compiled to
 * nothing unless the build found NCCL (KY_HAVE_NCCL). Tested by bench/dist_gpu.sh on GPU machines. */
#ifdef KY_HAVE_NCCL
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/check.cuh"
#include "cuda/nccl.h"

struct ky_nccl {
  ncclComm_t comm;
  ky_cuda *cu;
  cudaStream_t side;          /* the sums run here, beside the compute stream */
  cudaEvent_t ready, done;    /* compute -> side (per bucket), side -> compute (at finish) */
  int started;
};

#define KY_NCCL_CHECK(call)                                                                        \
  do {                                                                                             \
    ncclResult_t ky_r_ = (call);                                                                   \
    if (ky_r_ != ncclSuccess)                                                                      \
      return ky_error(KY_ERR_CUDA, "%s failed: %s (NCCL %d) at %s:%d", #call, ncclGetErrorString(ky_r_), (int)ky_r_, \
                      __FILE__, __LINE__);                                                         \
  } while (0)

static_assert(sizeof(ncclUniqueId) == KY_NCCL_ID_BYTES, "ncclUniqueId size");

#define KY_XSTR_(x) #x
#define KY_XSTR(x) KY_XSTR_(x)
extern "C" const char *ky_nccl_version(void) {
  return "NCCL " KY_XSTR(NCCL_MAJOR) "." KY_XSTR(NCCL_MINOR) "." KY_XSTR(NCCL_PATCH);
}

extern "C" ky_status ky_nccl_unique_id(unsigned char id[KY_NCCL_ID_BYTES]) {
  ncclUniqueId u;
  KY_NCCL_CHECK(ncclGetUniqueId(&u));
  memcpy(id, &u, sizeof u);
  return KY_OK;
}

extern "C" ky_status ky_nccl_init(ky_nccl **out, ky_cuda *cu, const unsigned char id[KY_NCCL_ID_BYTES], int rank,
                                  int size) {
  KY_CHECK_NULL(out, "nc");
  *out = NULL;
  KY_CUDA_CHECK_CTX(cu);
  ky_nccl *nc = (ky_nccl *)calloc(1, sizeof *nc);
  KY_CHECK(nc != NULL, KY_ERR_NOMEM, "ky_nccl_init: out of memory");
  nc->cu = cu;
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  KY_CUDA_CHECK(cudaSetDevice(cu->device));
  ncclResult_t r = ncclCommInitRank(&nc->comm, size, u, rank);
  if (r != ncclSuccess) {
    free(nc);
    return ky_error(KY_ERR_CUDA, "ky_nccl_init: ncclCommInitRank (rank %d of %d, GPU %d) failed: %s", rank, size,
                    cu->device, ncclGetErrorString(r));
  }
  KY_CUDA_CHECK(cudaStreamCreateWithFlags(&nc->side, cudaStreamNonBlocking));
  KY_CUDA_CHECK(cudaEventCreateWithFlags(&nc->ready, cudaEventDisableTiming));
  KY_CUDA_CHECK(cudaEventCreateWithFlags(&nc->done, cudaEventDisableTiming));
  *out = nc;
  return KY_OK;
}

extern "C" void ky_nccl_free(ky_nccl *nc) {
  if (!nc) return;
  cudaStreamSynchronize(nc->side);
  ncclCommDestroy(nc->comm);
  cudaEventDestroy(nc->ready);
  cudaEventDestroy(nc->done);
  cudaStreamDestroy(nc->side);
  free(nc);
}

extern "C" ky_status ky_nccl_sum_start(ky_nccl *nc, float *p, size_t n) {
  KY_CHECK_NULL(nc, "nc");
  /* The bucket's gradients are final once the kernels queued so far on the compute stream ran. */
  KY_CUDA_CHECK(cudaEventRecord(nc->ready, nc->cu->stream));
  KY_CUDA_CHECK(cudaStreamWaitEvent(nc->side, nc->ready, 0));
  KY_NCCL_CHECK(ncclAllReduce(p, p, n, ncclFloat, ncclSum, nc->comm, nc->side));
  nc->started = 1;
  return KY_OK;
}

extern "C" ky_status ky_nccl_sum_finish(ky_nccl *nc) {
  KY_CHECK_NULL(nc, "nc");
  if (!nc->started) return KY_OK;
  KY_CUDA_CHECK(cudaEventRecord(nc->done, nc->side));
  KY_CUDA_CHECK(cudaStreamWaitEvent(nc->cu->stream, nc->done, 0));
  nc->started = 0;
  return KY_OK;
}
#endif
