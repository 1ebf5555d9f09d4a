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
// its own sorted top K in registers while it scans its stride of the row,
// and the block then merges the threads' lists K times by a tree
// reduction: one pass over the row whatever K.
//
// The exclusions are marked first by writing -inf over the dot products
// (the score buffer is scratch), which a real dot product never is.
func topKKernelSource(k, threads int) string {
	return fmt.Sprintf(`
#define K %d
#define THREADS %d
#define MASKED (%s)
#define NEG_INF (__int_as_float(0xff800000))
#define NO_ITEM 0x7fffffff

extern "C" __global__ void __launch_bounds__(THREADS)
%s(float* scores, const float* __restrict__ prior, int n,
   const int* __restrict__ exclude, int m,
   float* __restrict__ out_scores, int* __restrict__ out_items)
{
    const int row = blockIdx.x;
    const int tid = threadIdx.x;
    float* s = scores + (size_t)row * n;
    const int* ex = exclude + (size_t)row * m;

    for (int j = tid; j < m; j += THREADS) {
        int x = ex[j];
        if (x > 0 && x < n) s[x] = NEG_INF;
    }
    __syncthreads();

    float ls[K];
    int li[K];
    int cnt = 0;
    for (int i = tid; i < n; i += THREADS) {
        float v = s[i];
        v = (i == 0 || v == NEG_INF) ? MASKED : v + prior[i];
        if (cnt == K && !(v > ls[K - 1])) continue;
        int p = cnt < K ? cnt : K - 1;
        while (p > 0 && ls[p - 1] < v) {
            ls[p] = ls[p - 1];
            li[p] = li[p - 1];
            p--;
        }
        ls[p] = v;
        li[p] = i;
        if (cnt < K) cnt++;
    }

    __shared__ float hs[THREADS];
    __shared__ int hi[THREADS];
    __shared__ int ht[THREADS];
    int ptr = 0;
    for (int r = 0; r < K; r++) {
        hs[tid] = ptr < cnt ? ls[ptr] : NEG_INF;
        hi[tid] = ptr < cnt ? li[ptr] : NO_ITEM;
        ht[tid] = tid;
        __syncthreads();
        for (int stride = THREADS / 2; stride > 0; stride >>= 1) {
            if (tid < stride) {
                float a = hs[tid], b = hs[tid + stride];
                int ia = hi[tid], ib = hi[tid + stride];
                if (b > a || (b == a && ib < ia)) {
                    hs[tid] = b;
                    hi[tid] = ib;
                    ht[tid] = ht[tid + stride];
                }
            }
            __syncthreads();
        }
        if (tid == 0) {
            out_scores[(size_t)row * K + r] = hs[0];
            out_items[(size_t)row * K + r] = hi[0];
        }
        if (tid == ht[0]) ptr++;
        __syncthreads();
    }
}
`, k, threads, cFloat(MaskedScore), topKKernelName)
}

// cFloat writes f as a C float literal that parses back to the same bits.
func cFloat(f float32) string {
	return fmt.Sprintf("__int_as_float(0x%08x)", math.Float32bits(f))
}

// kernelThreads is the block size for rows of n scores: a power of two,
// larger for long rows.
func kernelThreads(n int) int {
	if n >= 8192 {
		return 256
	}
	return 128
}
