package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// gemmRows is the number of users in every matrix product: small enough
// that a batch of a few users costs little, large enough that a big batch
// takes few launches.
const gemmRows = 256

// TopKConfig describes the item table a TopKScorer ranks against.
type TopKConfig struct {
	// Items is the [N+1, Dim] item embedding table, row-major; row 0 is
	// the padding index, always masked. Required.
	Items []float32
	// Prior is the [N+1] score added to every user's score of each item.
	// Nil means zeros.
	Prior []float32
	// Dim is D, the width of a user vector and of an item row. Required.
	Dim int
	// K is the number of items returned per user, at most N+1 and at most
	// 1024. Required.
	K int
	// MaxRows is the most users one Score call takes: it sizes the score
	// matrix (MaxRows, rounded up to a multiple of 256, x (N+1) float32)
	// on the GPU. Required.
	MaxRows int
	// MaxExclude is the width of each user's exclude list; 0 means none.
	MaxExclude int
}

// TopKScorer ranks items for users on the GPU: scores = users · itemsᵀ +
// prior (cublasSgemm, float32 products without TF32), index 0 and each
// user's excluded items masked to MaskedScore, top K by a kernel compiled
// with NVRTC. The item table is uploaded once, by NewTopKScorer.
//
// A user's results depend neither on the other users of a call nor on
// their number nor on MaxRows (every product is of blocks of gemmRows
// users), so they are reproducible bit for bit on the same GPU model and
// cuBLAS version whatever the batching. They differ from a CPU's in the
// last bits of the scores: the sums run in another order.
//
// A TopKScorer is safe for use by one goroutine at a time.
type TopKScorer struct {
	d          *Device
	n1, dim, k int
	maxRows    int
	maxExclude int
	threads    int
	arch       string

	handle uintptr // cuBLAS handle
	stream uintptr
	module uintptr
	kernel uintptr

	dItems, dPrior, dStates, dExclude, dScores, dOutS, dOutI uint64

	host      unsafe.Pointer // pinned staging: states, exclude, out scores, out items
	hStates   []float32
	hExclude  []int32
	hOutS     []float32
	hOutI     []int32
	params    unsafe.Pointer // C memory: 7 argument values, then 7 pointers to them
	alphaBeta unsafe.Pointer // C memory: float 1, float 0
}

// NewTopKScorer compiles the kernel for the device and K, creates a cuBLAS
// handle and a stream, and uploads the item table and prior.
func (d *Device) NewTopKScorer(cfg TopKConfig) (*TopKScorer, error) {
	switch {
	case cfg.Dim <= 0:
		return nil, fmt.Errorf("new top-k scorer: dim must be > 0, got %d", cfg.Dim)
	case len(cfg.Items) == 0 || len(cfg.Items)%cfg.Dim != 0:
		return nil, fmt.Errorf("new top-k scorer: %d item values is not a whole number of rows of %d", len(cfg.Items), cfg.Dim)
	case cfg.MaxRows <= 0:
		return nil, fmt.Errorf("new top-k scorer: max rows must be > 0, got %d", cfg.MaxRows)
	case cfg.MaxExclude < 0:
		return nil, fmt.Errorf("new top-k scorer: max exclude must be >= 0, got %d", cfg.MaxExclude)
	}
	n1 := len(cfg.Items) / cfg.Dim
	if cfg.K <= 0 || cfg.K > n1 || cfg.K > 1024 {
		return nil, fmt.Errorf("new top-k scorer: k must be in [1, min(%d items, 1024)], got %d", n1, cfg.K)
	}
	if cfg.Prior != nil && len(cfg.Prior) != n1 {
		return nil, fmt.Errorf("new top-k scorer: prior has %d values, want %d", len(cfg.Prior), n1)
	}
	t := &TopKScorer{d: d, n1: n1, dim: cfg.Dim, k: cfg.K, maxRows: cfg.MaxRows, maxExclude: cfg.MaxExclude, threads: kernelThreads(n1, cfg.K)}
	err := d.do(func() error { return t.init(cfg) })
	if err != nil {
		_ = t.Close() // frees whatever init got to allocate
		return nil, fmt.Errorf("new top-k scorer (%d items, D=%d, K=%d, %d users per call) on %s: %w", n1-1, cfg.Dim, cfg.K, cfg.MaxRows, d.name, err)
	}
	return t, nil
}

func (t *TopKScorer) init(cfg TopKConfig) error {
	d := t.d
	code, err := compile(&d.rtc, d.mem, topKKernelSource(t.k, t.threads), "recstream_topk.cu", d.ccMajor, d.ccMinor)
	if err != nil {
		return fmt.Errorf("compile the top-k kernel with NVRTC %s: %w", nvrtcVersion(&d.rtc), err)
	}
	t.arch = code.arch
	if err := d.drv.check(d.drv.cuModuleLoadData(&t.module, unsafe.Pointer(&code.image[0])), "cuModuleLoadData("+code.arch+")"); err != nil {
		return err
	}
	if err := d.drv.check(d.drv.cuModuleGetFunction(&t.kernel, t.module, topKKernelName), "cuModuleGetFunction"); err != nil {
		return err
	}
	if err := d.drv.check(d.drv.cuStreamCreate(&t.stream, cuStreamNonBlocking), "cuStreamCreate"); err != nil {
		return err
	}
	if err := checkBLAS(d.blas.create(&t.handle), "cublasCreate"); err != nil {
		return err
	}
	if err := errors.Join(
		checkBLAS(d.blas.setStream(t.handle, t.stream), "cublasSetStream"),
		checkBLAS(d.blas.setMathMode(t.handle, cublasDefaultMath), "cublasSetMathMode"),
	); err != nil {
		return err
	}

	// Whole blocks of gemmRows users, the last one's padding included.
	rows, m := (t.maxRows+gemmRows-1)/gemmRows*gemmRows, t.maxExclude
	for _, a := range []struct {
		p    *uint64
		size int
		what string
	}{
		{&t.dItems, 4 * len(cfg.Items), "item table"},
		{&t.dPrior, 4 * t.n1, "prior"},
		{&t.dStates, 4 * rows * t.dim, "user vectors"},
		{&t.dExclude, 4 * max(rows*m, 1), "exclude lists"},
		{&t.dScores, 4 * rows * t.n1, "score matrix"},
		{&t.dOutS, 4 * rows * t.k, "top scores"},
		{&t.dOutI, 4 * rows * t.k, "top items"},
	} {
		if err := d.drv.check(d.drv.cuMemAlloc(a.p, uintptr(a.size)), fmt.Sprintf("cuMemAlloc %d bytes for the %s", a.size, a.what)); err != nil {
			return err
		}
	}
	prior := cfg.Prior
	if prior == nil {
		prior = make([]float32, t.n1)
	}
	zeros := make([]float32, rows*t.dim) // the padding rows of the first blocks
	if err := errors.Join(
		d.drv.check(d.drv.cuMemcpyHtoD(t.dItems, unsafe.Pointer(&cfg.Items[0]), uintptr(4*len(cfg.Items))), "upload the item table"),
		d.drv.check(d.drv.cuMemcpyHtoD(t.dPrior, unsafe.Pointer(&prior[0]), uintptr(4*t.n1)), "upload the prior"),
		d.drv.check(d.drv.cuMemcpyHtoD(t.dStates, unsafe.Pointer(&zeros[0]), uintptr(4*len(zeros))), "clear the user vectors"),
	); err != nil {
		return err
	}

	nStates, nExclude, nOut := t.maxRows*t.dim, t.maxRows*m, t.maxRows*t.k
	hostBytes := 4 * (nStates + nExclude + 2*nOut)
	if err := d.drv.check(d.drv.cuMemAllocHost(&t.host, uintptr(hostBytes)), fmt.Sprintf("cuMemAllocHost %d bytes", hostBytes)); err != nil {
		return err
	}
	at := t.host
	t.hStates = unsafe.Slice((*float32)(at), nStates)
	at = unsafe.Add(at, 4*nStates)
	t.hExclude = unsafe.Slice((*int32)(at), nExclude)
	at = unsafe.Add(at, 4*nExclude)
	t.hOutS = unsafe.Slice((*float32)(at), nOut)
	at = unsafe.Add(at, 4*nOut)
	t.hOutI = unsafe.Slice((*int32)(at), nOut)

	if t.params, err = d.mem.alloc(7 * 16); err != nil {
		return err
	}
	for i := range 7 { // pointer i -> value slot i
		*(*uintptr)(unsafe.Add(t.params, 56+8*i)) = uintptr(unsafe.Add(t.params, 8*i))
	}
	if t.alphaBeta, err = d.mem.alloc(8); err != nil {
		return err
	}
	*(*float32)(t.alphaBeta) = 1
	*(*float32)(unsafe.Add(t.alphaBeta, 4)) = 0
	return nil
}

// Arch is the target the kernel was compiled for ("sm_90", or
// "compute_90" when the driver compiled PTX).
func (t *TopKScorer) Arch() string { return t.arch }

// MaxRows is the most users one Score call takes.
func (t *TopKScorer) MaxRows() int { return t.maxRows }

// Score ranks the items for rows users: states holds rows x Dim values,
// exclude rows x MaxExclude item indices (0 = padding; nil when
// MaxExclude is 0). It writes each user's K best scores, best first, to
// topScores and their item indices to topItems (rows x K each). Entries at
// MaskedScore are index 0 or excluded items, returned only when fewer than
// K real candidates remain.
func (t *TopKScorer) Score(states []float32, exclude []int32, rows int, topScores []float32, topItems []int32) error {
	switch {
	case rows <= 0 || rows > t.maxRows:
		return fmt.Errorf("gpu score: %d users, want 1 to %d", rows, t.maxRows)
	case len(states) < rows*t.dim:
		return fmt.Errorf("gpu score: %d state values for %d users of %d", len(states), rows, t.dim)
	case len(exclude) < rows*t.maxExclude:
		return fmt.Errorf("gpu score: %d exclude entries for %d users of %d", len(exclude), rows, t.maxExclude)
	case len(topScores) < rows*t.k || len(topItems) < rows*t.k:
		return fmt.Errorf("gpu score: output buffers hold %d and %d, want %d", len(topScores), len(topItems), rows*t.k)
	}
	d := t.d
	copy(t.hStates, states[:rows*t.dim])
	copy(t.hExclude, exclude[:rows*t.maxExclude])
	err := d.do(func() error {
		if err := d.drv.check(d.drv.cuMemcpyHtoDAsync(t.dStates, unsafe.Pointer(&t.hStates[0]), uintptr(4*rows*t.dim), t.stream), "copy user vectors to the GPU"); err != nil {
			return err
		}
		if t.maxExclude > 0 {
			if err := d.drv.check(d.drv.cuMemcpyHtoDAsync(t.dExclude, unsafe.Pointer(&t.hExclude[0]), uintptr(4*rows*t.maxExclude), t.stream), "copy exclude lists to the GPU"); err != nil {
				return err
			}
		}
		// Row-major scores[rows, N+1] is column-major scoresᵀ[N+1, rows] =
		// items[N+1, D] · statesᵀ[D, rows]; the row-major item table is the
		// column-major D x (N+1) matrix, hence OP_T on it. Each product is
		// of one block of gemmRows users (the rows past rows hold stale
		// vectors whose scores nobody reads): cuBLAS picks its kernel, and
		// with it the order of the sums, by the matrix sizes, so one fixed
		// size keeps a user's scores independent of how many others share
		// the call and of MaxRows.
		for b := 0; b < rows; b += gemmRows {
			if err := checkBLAS(d.blas.sgemm(t.handle, cublasOpT, cublasOpN, int32(t.n1), gemmRows, int32(t.dim),
				t.alphaBeta, t.dItems, int32(t.dim), t.dStates+uint64(4*b*t.dim), int32(t.dim),
				unsafe.Add(t.alphaBeta, 4), t.dScores+uint64(4*b*t.n1), int32(t.n1)), "cublasSgemm"); err != nil {
				return err
			}
		}
		t.setParams(uint64(t.dScores), uint64(t.dPrior), uint64(t.n1), uint64(t.dExclude), uint64(t.maxExclude), uint64(t.dOutS), uint64(t.dOutI))
		if err := d.drv.check(d.drv.cuLaunchKernel(t.kernel, uint32(rows), 1, 1, uint32(t.threads), 1, 1, 0, t.stream,
			unsafe.Add(t.params, 56), nil), "launch the top-k kernel"); err != nil {
			return err
		}
		if err := errors.Join(
			d.drv.check(d.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&t.hOutS[0]), t.dOutS, uintptr(4*rows*t.k), t.stream), "copy top scores from the GPU"),
			d.drv.check(d.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&t.hOutI[0]), t.dOutI, uintptr(4*rows*t.k), t.stream), "copy top items from the GPU"),
		); err != nil {
			return err
		}
		return d.drv.check(d.drv.cuStreamSynchronize(t.stream), "run on the GPU")
	})
	if err != nil {
		return fmt.Errorf("gpu score %d users: %w", rows, err)
	}
	copy(topScores, t.hOutS[:rows*t.k])
	copy(topItems, t.hOutI[:rows*t.k])
	return nil
}

// setParams writes the kernel's argument values into their C slots: the
// pointers as 8-byte values, n and m as 4-byte ints (the first 4 bytes of
// their slot, little-endian).
func (t *TopKScorer) setParams(scores, prior, n, exclude, m, outS, outI uint64) {
	slot := func(i int) unsafe.Pointer { return unsafe.Add(t.params, 8*i) }
	*(*uint64)(slot(0)) = scores
	*(*uint64)(slot(1)) = prior
	*(*int32)(slot(2)) = int32(n)
	*(*uint64)(slot(3)) = exclude
	*(*int32)(slot(4)) = int32(m)
	*(*uint64)(slot(5)) = outS
	*(*uint64)(slot(6)) = outI
}

// Close frees the scorer's GPU memory, stream, cuBLAS handle and module.
func (t *TopKScorer) Close() error {
	var err error
	if t.d != nil {
		err = t.d.do(t.release)
		if t.params != nil {
			t.d.mem.free(t.params)
		}
		if t.alphaBeta != nil {
			t.d.mem.free(t.alphaBeta)
		}
		t.params, t.alphaBeta, t.d = nil, nil, nil
	}
	if err != nil {
		return fmt.Errorf("close top-k scorer: %w", err)
	}
	return nil
}

// release frees what init allocated; it runs with the context current and
// tolerates a partial init.
func (t *TopKScorer) release() error {
	d := t.d
	var errs []error
	if t.stream != 0 {
		errs = append(errs, d.drv.check(d.drv.cuStreamSynchronize(t.stream), "cuStreamSynchronize"))
	}
	for _, p := range []*uint64{&t.dItems, &t.dPrior, &t.dStates, &t.dExclude, &t.dScores, &t.dOutS, &t.dOutI} {
		if *p != 0 {
			errs = append(errs, d.drv.check(d.drv.cuMemFree(*p), "cuMemFree"))
			*p = 0
		}
	}
	if t.host != nil {
		errs = append(errs, d.drv.check(d.drv.cuMemFreeHost(t.host), "cuMemFreeHost"))
		t.host, t.hStates, t.hExclude, t.hOutS, t.hOutI = nil, nil, nil, nil, nil
	}
	if t.handle != 0 {
		errs = append(errs, checkBLAS(d.blas.destroy(t.handle), "cublasDestroy"))
		t.handle = 0
	}
	if t.stream != 0 {
		errs = append(errs, d.drv.check(d.drv.cuStreamDestroy(t.stream), "cuStreamDestroy"))
		t.stream = 0
	}
	if t.module != 0 {
		errs = append(errs, d.drv.check(d.drv.cuModuleUnload(t.module), "cuModuleUnload"))
		t.module = 0
	}
	return errors.Join(errs...)
}
