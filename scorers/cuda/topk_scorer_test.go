package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openOrSkip opens GPU 0. It skips the test, saying why, only when a CUDA
// library is missing (a machine without a GPU stack: the one allowed skip);
// any other failure fails the test.
func openOrSkip(tb testing.TB) *Device {
	tb.Helper()
	d, err := Open(Options{})
	if errors.Is(err, ErrLibraryNotFound) {
		tb.Skipf("no GPU library on this machine, GPU test not run: %v", err)
	}
	if err != nil {
		tb.Fatalf("open the GPU: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close device: %v", err)
		}
	})
	tb.Logf("GPU: %s; libraries %v", d, d.Libraries())
	return d
}

// TestOpenReportsWhatIsMissing checks the error of Open on a machine without
// the driver, and that a machine with one opens its GPU: whichever this
// machine is, the test asserts something.
func TestOpenReportsWhatIsMissing(t *testing.T) {
	d, err := Open(Options{})
	if err == nil {
		defer d.Close()
		if d.Name() == "" || d.TotalMemory() == 0 {
			t.Fatalf("opened a GPU without a name or memory: %s", d)
		}
		t.Logf("GPU present: %s", d)
		return
	}
	if _, statErr := os.Stat("/dev/nvidiactl"); statErr == nil && !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("GPU device node present but Open failed: %v", err)
	}
	if errors.Is(err, ErrLibraryNotFound) && strings.Contains(err.Error(), "libcuda.so.1 not found") {
		t.Logf("no driver, as expected on a CPU machine: %v", err)
		return
	}
	if !errors.Is(err, ErrLibraryNotFound) && !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Open = %v; want ErrLibraryNotFound or ErrNoDevice", err)
	}
	t.Logf("GPU stack incomplete: %v", err)
}

func TestOpenToolkitLibraryNamesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := openToolkitLibrary("libcublas", dir, "libcublasLt")
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "libcublas.so not found in "+dir) {
		t.Fatalf("openToolkitLibrary in an empty dir = %v", err)
	}
	if err := os.WriteFile(dir+"/libcublas.so.13", []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = openToolkitLibrary("libcublas", dir)
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "tried "+dir+"/libcublas.so.13") {
		t.Fatalf("openToolkitLibrary of a broken file = %v", err)
	}
}

func TestCandidatesNewestFirst(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so", "libnvrtc-builtins.so.13.0"} {
		if err := os.WriteFile(dir+"/"+name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := candidates(dir, "libnvrtc")
	want := []string{dir + "/libnvrtc.so", dir + "/libnvrtc.so.13", dir + "/libnvrtc.so.12"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("candidates = %v, want %v", got, want)
	}
}

// nvrtcDir is where NVRTC is looked for by the compile test:
// $RECSTREAM_CUDA_LIB_DIR, else .deps/nvrtc (scripts/fetch-nvrtc.sh) in the
// working directory or the nearest parent that has one, else "" (the usual
// places).
func nvrtcDir() string {
	if d := os.Getenv(LibraryDirEnv); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, ".deps", "nvrtc"); fileExists(filepath.Join(p, "libnvrtc.so.13")) {
			return p
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// TestKernelCompiles compiles the top-k kernel with NVRTC for the GPUs the
// project targets. NVRTC needs no GPU: this runs wherever libnvrtc is found
// (scripts/fetch-nvrtc.sh puts the nvidia-cuda-nvrtc wheel's in .deps/nvrtc).
func TestKernelCompiles(t *testing.T) {
	lib, err := openToolkitLibrary("libnvrtc", nvrtcDir(), "libnvrtc-builtins")
	if errors.Is(err, ErrLibraryNotFound) {
		t.Skipf("no GPU library (libnvrtc) on this machine, kernel compile not checked: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var rtc nvrtcAPI
	if err := bind(lib, rtc.symbols()); err != nil {
		t.Fatal(err)
	}
	mem, err := openCMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NVRTC %s from %s", nvrtcVersion(&rtc), lib.path)
	for _, tc := range []struct {
		k, threads   int
		major, minor int
	}{
		{20, 128, 9, 0}, // H100, H200
		{1, 256, 9, 0},
		{100, 256, 8, 0}, // A100
		{512, 256, 9, 0}, // the largest lists at 256 threads (32 KiB shared)
		{1024, 128, 9, 0},
	} {
		start := time.Now()
		c, err := compile(&rtc, mem, topKKernelSource(tc.k, tc.threads), "recstream_topk.cu", tc.major, tc.minor)
		if err != nil {
			t.Fatalf("compile K=%d threads=%d for %d.%d: %v", tc.k, tc.threads, tc.major, tc.minor, err)
		}
		if c.ptx || len(c.image) < 1000 || c.arch != fmt.Sprintf("sm_%d%d", tc.major, tc.minor) {
			t.Fatalf("compiled %s (ptx %v), %d bytes; want a CUBIN for sm_%d%d", c.arch, c.ptx, len(c.image), tc.major, tc.minor)
		}
		t.Logf("K=%d threads=%d: %s, %d bytes in %s; log %q", tc.k, tc.threads, c.arch, len(c.image), time.Since(start).Round(time.Millisecond), c.log)
	}
	// The PTX fallback, for a GPU this NVRTC has no CUBIN target for.
	ptx, err := compileFor(&rtc, mem, topKKernelSource(20, 128), "recstream_topk.cu", "compute_90", true)
	if err != nil || !ptx.ptx || !strings.Contains(string(ptx.image), ".entry "+topKKernelName) || ptx.image[len(ptx.image)-1] != 0 {
		t.Fatalf("PTX for compute_90: %v (NUL-terminated, with the kernel's entry?)", err)
	}
	if _, err := compile(&rtc, mem, "this is not CUDA", "bad.cu", 9, 0); err == nil || !strings.Contains(err.Error(), "bad.cu") {
		t.Fatalf("compile of garbage = %v, want an error with the compiler's log", err)
	}
}

// referenceTopK ranks one user's scores as the ONNX graph does: float32 dot
// products, + prior, index 0 and excluded items at MaskedScore, best first,
// ties to the lower index.
func referenceTopK(items, prior, state []float32, exclude []int32, k int) ([]float32, []int32) {
	dim := len(state)
	n1 := len(items) / dim
	all := make([]float32, n1)
	for i := range n1 {
		var dot float32
		for j, v := range state {
			dot += v * items[i*dim+j]
		}
		all[i] = dot + prior[i]
	}
	all[0] = MaskedScore
	for _, x := range exclude {
		if x > 0 {
			all[x] = MaskedScore
		}
	}
	scores, idx := make([]float32, k), make([]int32, k)
	used := make([]bool, n1)
	for r := range k {
		best := -1
		for i := range n1 {
			if !used[i] && (best < 0 || all[i] > all[best]) {
				best = i
			}
		}
		used[best] = true
		scores[r], idx[r] = all[best], int32(best)
	}
	return scores, idx
}

func randomTable(r *rand.Rand, n1, dim int) ([]float32, []float32) {
	items := make([]float32, n1*dim)
	for i := dim; i < len(items); i++ {
		items[i] = float32(r.NormFloat64() / math.Sqrt(float64(dim)))
	}
	prior := make([]float32, n1)
	prior[0] = MaskedScore
	for i := 1; i < n1; i++ {
		prior[i] = float32(r.Float64() * 0.05)
	}
	return items, prior
}

// TestTopKScorerMatchesReference runs the GPU path against the plain Go
// ranking: same items (ties within 1e-4 may swap), scores within 1e-4,
// exclusions and index 0 never returned while real candidates remain.
func TestTopKScorerMatchesReference(t *testing.T) {
	d := openOrSkip(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		n1, dim, k, rows, m int
		distinct            int // distinct item rows (0: all): fewer make exact ties
	}{
		{2001, 32, 20, 37, 8, 0},
		{10001, 64, 20, 300, 32, 0},
		{30, 8, 30, 5, 4, 0}, // K = N+1: masked entries come last
		{5000, 16, 1, 3, 0, 0},
		{100001, 64, 100, 40, 16, 0}, // 256 threads, 8 warps' lists of 100
		{20001, 16, 600, 3, 8, 0},    // K > 512: 128 threads
		{3001, 8, 50, 20, 4, 7},      // ties everywhere: lower index first
	} {
		t.Run(fmt.Sprintf("N=%d/D=%d/K=%d/rows=%d/M=%d/distinct=%d", tc.n1-1, tc.dim, tc.k, tc.rows, tc.m, tc.distinct), func(t *testing.T) {
			items, prior := randomTable(r, tc.n1, tc.dim)
			if tc.distinct > 0 {
				for i := 1; i < tc.n1; i++ {
					src := 1 + (i-1)%tc.distinct
					copy(items[i*tc.dim:(i+1)*tc.dim], items[src*tc.dim:(src+1)*tc.dim])
					prior[i] = 0
				}
			}
			ts, err := d.NewTopKScorer(TopKConfig{Items: items, Prior: prior, Dim: tc.dim, K: tc.k, MaxRows: tc.rows, MaxExclude: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			defer ts.Close()
			states := make([]float32, tc.rows*tc.dim)
			for i := range states {
				states[i] = float32(r.NormFloat64())
			}
			exclude := make([]int32, tc.rows*tc.m)
			for i := range exclude {
				if r.IntN(4) > 0 {
					exclude[i] = int32(r.IntN(tc.n1))
				}
			}
			for _, rows := range []int{tc.rows, 1} {
				gotS, gotI := make([]float32, rows*tc.k), make([]int32, rows*tc.k)
				if err := ts.Score(states, exclude, rows, gotS, gotI); err != nil {
					t.Fatal(err)
				}
				for u := range rows {
					for j := 1; j < tc.k; j++ {
						a, b := u*tc.k+j-1, u*tc.k+j
						if gotS[b] > gotS[a] || (gotS[b] == gotS[a] && gotI[b] <= gotI[a]) {
							t.Fatalf("user %d ranks %d,%d: (%g, %d) then (%g, %d): want scores falling, ties by rising index",
								u, j-1, j, gotS[a], gotI[a], gotS[b], gotI[b])
						}
					}
					wantS, wantI := referenceTopK(items, prior, states[u*tc.dim:(u+1)*tc.dim], exclude[u*tc.m:(u+1)*tc.m], tc.k)
					for j := range tc.k {
						g, w := gotS[u*tc.k+j], wantS[j]
						if math.Abs(float64(g-w)) > 1e-4*max(1, math.Abs(float64(w))) {
							t.Fatalf("user %d rank %d: score %g, reference %g", u, j, g, w)
						}
						if gi := gotI[u*tc.k+j]; gi != wantI[j] && math.Abs(float64(g-w)) > 1e-4 {
							t.Fatalf("user %d rank %d: item %d, reference %d", u, j, gi, wantI[j])
						}
					}
				}
			}
			if err := ts.Score(states, exclude, tc.rows+1, nil, nil); err == nil {
				t.Fatal("Score of more rows than MaxRows was accepted")
			}
		})
	}
}

// TestTopKScorerIndependentOfBatching scores the same users alone, in a
// call of many, and through scorers of other MaxRows: the scores must be
// the same bits (the replay guarantee rests on it), not merely close.
func TestTopKScorerIndependentOfBatching(t *testing.T) {
	d := openOrSkip(t)
	r := rand.New(rand.NewPCG(9, 10))
	const n1, dim, k, m, users = 10001, 64, 20, 8, 600
	items, prior := randomTable(r, n1, dim)
	states := make([]float32, users*dim)
	for i := range states {
		states[i] = float32(r.NormFloat64())
	}
	exclude := make([]int32, users*m)
	run := func(maxRows, rows, first int) ([]float32, []int32) {
		ts, err := d.NewTopKScorer(TopKConfig{Items: items, Prior: prior, Dim: dim, K: k, MaxRows: maxRows, MaxExclude: m})
		if err != nil {
			t.Fatal(err)
		}
		defer ts.Close()
		outS, outI := make([]float32, rows*k), make([]int32, rows*k)
		if err := ts.Score(states[first*dim:], exclude[first*m:], rows, outS, outI); err != nil {
			t.Fatal(err)
		}
		return outS, outI
	}
	wantS, wantI := run(users, users, 0)
	for _, c := range []struct{ maxRows, rows, first int }{{1, 1, 0}, {1, 1, 599}, {7, 7, 300}, {4096, 257, 100}, {300, 300, 300}} {
		gotS, gotI := run(c.maxRows, c.rows, c.first)
		for u := range c.rows {
			for j := range k {
				g, w := u*k+j, (c.first+u)*k+j
				if math.Float32bits(gotS[g]) != math.Float32bits(wantS[w]) || gotI[g] != wantI[w] {
					t.Fatalf("MaxRows %d, %d users from %d: user %d rank %d is (%g, %d), (%g, %d) in one call of %d",
						c.maxRows, c.rows, c.first, c.first+u, j, gotS[g], gotI[g], wantS[w], wantI[w], users)
				}
			}
		}
	}
}

// BenchmarkTopKScorer measures GPU refreshes per second (score matrix,
// mask, top-20, both copies) for 10,000 and 100,000 items and D=64.
func BenchmarkTopKScorer(b *testing.B) {
	d := openOrSkip(b)
	r := rand.New(rand.NewPCG(3, 4))
	const dim, k, m = 64, 20, 32
	for _, n1 := range []int{10_001, 100_001} {
		items, prior := randomTable(r, n1, dim)
		for _, rows := range []int{256, 1024, 4096} {
			b.Run(fmt.Sprintf("items=%d/B=%d", n1-1, rows), func(b *testing.B) {
				ts, err := d.NewTopKScorer(TopKConfig{Items: items, Prior: prior, Dim: dim, K: k, MaxRows: rows, MaxExclude: m})
				if err != nil {
					b.Fatal(err)
				}
				defer ts.Close()
				states := make([]float32, rows*dim)
				for i := range states {
					states[i] = float32(r.NormFloat64())
				}
				exclude := make([]int32, rows*m)
				outS, outI := make([]float32, rows*k), make([]int32, rows*k)
				b.ResetTimer()
				for range b.N {
					if err := ts.Score(states, exclude, rows, outS, outI); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
			})
		}
	}
}
