package cuda

import (
	"fmt"
	"math"
)

// MaskedScore is the score of index 0 and of excluded items, as in the
// model contract (schemas.ModelMaskedScore): such entries rank below every
// real candidate and callers drop them.
const MaskedScore = float32(-1e9)

// topKKernelName is the kernel's symbol (extern "C": not mangled).
const topKKernelName = "recstream_mask_topk"

// topKKernelSource returns the CUDA C source of the kernel that finishes a
// row of scores: it adds the item prior (one rounded float add, as the ONNX
// graph's Add), masks index 0 and the row's excluded items to MaskedScore,
// and writes the k best scores and their indices, best first, ties going
// to the lower index (as ONNX TopK). K and the block size are compile-time
// constants (the kernel is compiled for each model), so each thread keeps
// its own sorted top K while it scans its stride of the row, skipping what
// its warp already knows cannot qualify. The lists are then merged without
// block-wide barriers: each warp merges its 32 lists K times by a shuffle
// (butterfly) arg-max into shared memory, and the first warp merges the
// warps' lists the same way. Items are unique across the
// lists, so the lane whose head won is the one whose head equals the
// result, and the order (score descending, index ascending) is total.
//
// The exclusions are marked first by writing -inf over the dot products
// (the score buffer is scratch), which a real dot product never is.
func topKKernelSource(k, threads int) string {
	return fmt.Sprintf(`
#define K %d
#define THREADS %d
#define NWARPS (THREADS / 32)
#define MASKED (%s)
#define NEG_INF (__int_as_float(0xff800000))
#define NO_ITEM 0x7fffffff
#define FULL 0xffffffffu

// warp_best leaves in every lane the best (score, item) of the warp's
// candidates: higher score first, lower item on ties.
__device__ __forceinline__ void warp_best(float* v, int* i)
{
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(FULL, *v, o);
        int oi = __shfl_xor_sync(FULL, *i, o);
        if (ov > *v || (ov == *v && oi < *i)) {
            *v = ov;
            *i = oi;
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
%s(float* scores, const float* __restrict__ prior, int n,
   const int* __restrict__ exclude, int m,
   float* __restrict__ out_scores, int* __restrict__ out_items)
{
    const int row = blockIdx.x;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    float* s = scores + (size_t)row * n;
    const int* ex = exclude + (size_t)row * m;

    for (int j = tid; j < m; j += THREADS) {
        int x = ex[j];
        if (x > 0 && x < n) s[x] = NEG_INF;
    }
    __syncthreads();

    // The list is indexed at run time, so it lives in local memory; its
    // last score is kept in a register. bound is the K-th best score the
    // warp's lists hold together: the warp has K items at least as good,
    // so anything strictly below it cannot make the row's top K. It is
    // worked out after rounds 7, 15, 31, ... (insertions thin out as the
    // scan goes on) and makes insertions, slow and divergent, rare. The
    // loop runs the same rounds in every lane, so that all of them reach
    // the shuffles.
    float ls[K];
    int li[K];
    int cnt = 0;
    float last = NEG_INF;
    float bound = NEG_INF;
    for (int base = 0, round = 0; base < n; base += THREADS, round++) {
        const int i = base + tid;
        if (i < n) {
            float v = s[i];
            v = (i == 0 || v == NEG_INF) ? MASKED : v + prior[i];
            if (!(cnt == K && !(v > last)) && !(v < bound)) {
                int p = cnt < K ? cnt : K - 1;
                while (p > 0 && ls[p - 1] < v) {
                    ls[p] = ls[p - 1];
                    li[p] = li[p - 1];
                    p--;
                }
                ls[p] = v;
                li[p] = i;
                if (cnt < K) cnt++;
                if (cnt == K) last = ls[K - 1];
            }
        }
        if (round >= 7 && (round & (round + 1)) == 0) {
            int p = 0;
            float v = NEG_INF;
            int it = NO_ITEM;
            for (int r = 0; r < K; r++) {
                v = p < cnt ? ls[p] : NEG_INF;
                it = p < cnt ? li[p] : NO_ITEM;
                const int mine = it;
                warp_best(&v, &it);
                if (p < cnt && mine == it) p++;
            }
            if (it != NO_ITEM) bound = v;
        }
    }

    // Each warp: its lanes' lists into one list of K, padded with
    // (NEG_INF, NO_ITEM) where the row has fewer items.
    __shared__ float ws[NWARPS * K];
    __shared__ int wi[NWARPS * K];
    int ptr = 0;
    for (int r = 0; r < K; r++) {
        float v = ptr < cnt ? ls[ptr] : NEG_INF;
        int i = ptr < cnt ? li[ptr] : NO_ITEM;
        int mine = i;
        warp_best(&v, &i);
        if (ptr < cnt && mine == i) ptr++;
        if (lane == 0) {
            ws[warp * K + r] = v;
            wi[warp * K + r] = i;
        }
    }
    __syncthreads();

    // The first warp: lane w walks warp w's list.
    if (warp != 0) return;
    int q = 0;
    for (int r = 0; r < K; r++) {
        bool has = lane < NWARPS && q < K;
        float v = has ? ws[lane * K + q] : NEG_INF;
        int i = has ? wi[lane * K + q] : NO_ITEM;
        int mine = i;
        warp_best(&v, &i);
        if (has && i != NO_ITEM && mine == i) q++;
        if (lane == 0) {
            out_scores[(size_t)row * K + r] = v;
            out_items[(size_t)row * K + r] = i;
        }
    }
}
`, k, threads, cFloat(MaskedScore), topKKernelName)
}

// cFloat writes f as a C float literal that parses back to the same bits.
func cFloat(f float32) string {
	return fmt.Sprintf("__int_as_float(0x%08x)", math.Float32bits(f))
}

// kernelThreads is the block size for rows of n scores and lists of k: a
// power of two, larger for long rows, and small enough that the warps'
// lists (8 bytes an entry) stay within 32 KiB of shared memory.
func kernelThreads(n, k int) int {
	if n >= 8192 && k <= 512 {
		return 256
	}
	return 128
}
