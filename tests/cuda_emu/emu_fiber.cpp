// A CPU emulation of the CUDA execution model for tests/cuda_emu/run_ops.sh and run.sh: each thread
// of a block is a ucontext fiber that runs until it blocks; __syncthreads is a block barrier and
// __shfl_down_sync a warp barrier with real shuffle semantics; __shared__ arrays are poisoned with
// NaN at each block's start (emu_shared_fresh). Checks kernel logic (indexing, reductions, barriers,
// bounds), never timing or the hardware.
#include "emu_cuda.h"
#include <ucontext.h>
#include <unordered_map>
#include <vector>

uint3e threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {
enum St { RUN, SYNC, SHFL, DONE };
struct Fiber { ucontext_t ctx; St st; unsigned tid; uint64_t shv; unsigned shd; unsigned seq; };
const size_t STACK = 256 * 1024;
std::vector<Fiber> F;
std::vector<char *> stacks;
/* Fiber stacks are reused across launches and released at exit (so LeakSanitizer stays quiet). */
struct StackPool { ~StackPool() { for (char *st : stacks) free(st); } } stack_pool;
ucontext_t sched;
Fiber *cur;
const std::function<void()> *body;
uint64_t slots[2][32][32];  // parity, warp, lane
uint32_t shfl_lanes[2][32];  // parity, warp: the lanes the last release of that parity let through
cudaError_t last = cudaSuccess;
unsigned long long block_gen = 0;                        // counts blocks across all launches
std::unordered_map<void *, unsigned long long> fresh;   // shared array -> block that last poisoned it
bool reverse_order() { static const bool r = getenv("EMU_REVERSE") && getenv("EMU_REVERSE")[0] == '1'; return r; }

void entry() {
  (*body)();
  cur->st = DONE;
  swapcontext(&cur->ctx, &sched);
}
void set_idx(Fiber &f) {
  threadIdx.x = f.tid % blockDim.x;
  threadIdx.y = (f.tid / blockDim.x) % blockDim.y;
  threadIdx.z = f.tid / (blockDim.x * blockDim.y);
  cur = &f;
}
}  // namespace

void emu_shared_fresh(void *p, size_t bytes) {
  unsigned long long &g = fresh[p];
  if (g != block_gen) { memset(p, 0xff, bytes); g = block_gen; }
}

void __syncthreads() {
  cur->st = SYNC;
  swapcontext(&cur->ctx, &sched);
}

uint64_t emu_shfl_down(uint64_t bits, unsigned delta) {
  Fiber *me = cur;
  unsigned warp = me->tid / 32, lane = me->tid % 32, par = me->seq & 1;
  slots[par][warp][lane] = bits;
  me->st = SHFL;
  me->shd = delta;
  swapcontext(&me->ctx, &sched);
  // resumed once every live lane of the warp has written this shuffle's slot
  unsigned src = lane + delta;
  me->seq++;
  if (src >= 32 || warp * 32 + src >= F.size()) return bits;
  // A lane that left before this shuffle never wrote its slot (undefined on a GPU); one that took
  // part and has exited since, because this fiber resumed after it, gave its value in time.
  if (!(shfl_lanes[par][warp] >> src & 1u)) { fprintf(stderr, "emu: shuffle reads lane %u, which had exited\n", src); abort(); }
  return slots[par][warp][src];
}

void emu_launch(emu_cfg c, const std::function<void()> &f) {
  if (c.b.x * c.b.y * c.b.z == 0 || c.b.x * c.b.y * c.b.z > 1024 || c.g.x == 0 || c.g.y == 0 || c.g.z == 0 ||
      c.g.y > 65535 || c.g.z > 65535) {
    fprintf(stderr, "emu: bad launch config grid %u,%u,%u block %u,%u,%u\n", c.g.x, c.g.y, c.g.z, c.b.x, c.b.y, c.b.z);
    last = (cudaError_t)9;
    return;
  }
  gridDim = c.g;
  blockDim = c.b;
  unsigned nt = c.b.x * c.b.y * c.b.z;
  F.assign(nt, Fiber());
  while (stacks.size() < nt) stacks.push_back((char *)malloc(STACK));
  body = &f;
  for (unsigned bz = 0; bz < c.g.z; bz++)
    for (unsigned by = 0; by < c.g.y; by++)
      for (unsigned bx = 0; bx < c.g.x; bx++) {
        blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
        ++block_gen;
        for (unsigned t = 0; t < nt; t++) {
          Fiber &fb = F[t];
          fb.st = RUN; fb.tid = t; fb.seq = 0;
          getcontext(&fb.ctx);
          fb.ctx.uc_stack.ss_sp = stacks[t];
          fb.ctx.uc_stack.ss_size = STACK;
          fb.ctx.uc_link = nullptr;
          makecontext(&fb.ctx, entry, 0);
        }
        for (;;) {
          bool ran = false;
          // Each fiber runs until it blocks, in thread order (EMU_REVERSE=1: the reverse), so a
          // thread that reads shared memory before a missing barrier sees the others' writes not
          // yet done (RAW) or already overwritten (WAR), one direction per order.
          for (unsigned i = 0; i < nt; i++) {
            const unsigned t = reverse_order() ? nt - 1 - i : i;
            if (F[t].st == RUN) {
              set_idx(F[t]);
              swapcontext(&sched, &F[t].ctx);
              ran = true;
            }
          }
          if (ran) continue;
          // nobody runnable: resolve barriers
          unsigned live = 0, sync = 0;
          for (auto &x : F) if (x.st != DONE) { live++; if (x.st == SYNC) sync++; }
          if (live == 0) break;
          bool released = false;
          if (sync == live) { for (auto &x : F) if (x.st == SYNC) x.st = RUN; continue; }
          for (unsigned w = 0; w * 32 < nt; w++) {
            unsigned l = 0, s = 0, y = 0;
            for (unsigned i = w * 32; i < nt && i < w * 32 + 32; i++)
              if (F[i].st != DONE) { l++; if (F[i].st == SHFL) s++; if (F[i].st == SYNC) y++; }
            if (l && s == l) {
              unsigned seq = F[w * 32].seq;
              uint32_t lanes = 0;
              for (unsigned i = w * 32; i < nt && i < w * 32 + 32; i++)
                if (F[i].st == SHFL) { if (F[i].seq != seq) { fprintf(stderr, "emu: shuffle seq mismatch\n"); abort(); } F[i].st = RUN; lanes |= 1u << (i - w * 32); }
              shfl_lanes[seq & 1][w] = lanes;
              released = true;
            }
          }
          if (!released) { fprintf(stderr, "emu: deadlock (live %u, at sync %u)\n", live, sync); abort(); }
        }
      }
}

cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("EMU_NO_GPU") ? 0 : 1; return getenv("EMU_NO_GPU") ? cudaErrorNoDevice : cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
// An sm_90 card with 2 SMs, or EMU_SMS of them (132: an H100's count, which makes the convolution
// pick smaller tiles and split-K on small layers, as it would there).
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  strcpy(p->name, "CPU fiber emulator"); p->major = 9; p->minor = 0;
  p->multiProcessorCount = getenv("EMU_SMS") && atoi(getenv("EMU_SMS")) > 0 ? atoi(getenv("EMU_SMS")) : 2;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, int) { *s = (void *)1; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { cudaError_t e = last; return e; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
  if (n > ((size_t)8 << 30)) { last = cudaErrorMemoryAllocation; return cudaErrorMemoryAllocation; }
  *p = malloc(n);
  // poison fresh memory so reads of unwritten device memory are visible as garbage NaN
  if (*p) memset(*p, 0xff, n);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) { memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaGetLastError() { cudaError_t e = last; last = cudaSuccess; return e; }
const char *cudaGetErrorName(cudaError_t e) { return e == 2 ? "cudaErrorMemoryAllocation" : e == 9 ? "cudaErrorInvalidConfiguration" : e == 100 ? "cudaErrorNoDevice" : "cudaError"; }
const char *cudaGetErrorString(cudaError_t e) { return e == 2 ? "out of memory" : e == 100 ? "no CUDA-capable device is detected" : "error"; }
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = (size_t)4 << 30; *t = (size_t)8 << 30; return cudaSuccess; }
struct emu_event { int x; };
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new emu_event(); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) { *ms = 0.f; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
