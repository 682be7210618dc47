/* NCCL for data-parallel CUDA gradients: a communicator per rank (bootstrapped by the caller, who
 * broadcasts rank 0's unique id through MPI) and in-place float sums on a side stream that waits
 * for the compute stream and that the compute stream waits for at the end. No CUDA or NCCL types
 * appear here. Exists only in builds with KY_HAVE_NCCL. Tested by bench/dist_gpu.sh on a GPU
 * machine (one rank per GPU) and compiled and linked by every NCCL build. */
#ifndef KY_CUDA_NCCL_H
#define KY_CUDA_NCCL_H

#include <stddef.h>
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ky_cuda;
typedef struct ky_nccl ky_nccl;

enum { KY_NCCL_ID_BYTES = 128 };   /* sizeof(ncclUniqueId) */

const char *ky_nccl_version(void);
/* Rank 0 makes the id; every rank then passes the same bytes to ky_nccl_init. */
ky_status ky_nccl_unique_id(unsigned char id[KY_NCCL_ID_BYTES]);
ky_status ky_nccl_init(ky_nccl **nc, struct ky_cuda *cu, const unsigned char id[KY_NCCL_ID_BYTES], int rank, int size);
void ky_nccl_free(ky_nccl *nc);
/* Sums n floats of device memory p over the ranks, in place, once the work already queued on
 * the compute stream is done; returns at once. */
ky_status ky_nccl_sum_start(ky_nccl *nc, float *p, size_t n);
/* Makes the compute stream wait for every started sum. */
ky_status ky_nccl_sum_finish(ky_nccl *nc);

#ifdef __cplusplus
}
#endif
#endif
