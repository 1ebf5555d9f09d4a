package training

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// ALSConfig configures TrainALS. The zero value of each field means its
// documented default.
type ALSConfig struct {
	// Dim is the factor width D. Default 64.
	Dim int `yaml:"dim" json:"dim"`
	// Iterations is the number of alternations (users, then items).
	// Default 10.
	Iterations int `yaml:"iterations" json:"iterations"`
	// Regularization is lambda, the L2 penalty on every factor.
	// Default 0.1.
	Regularization float64 `yaml:"regularization" json:"regularization"`
	// Alpha scales confidence: a (user, item) pair whose events weigh w in
	// all (see TypeWeights) has confidence 1 + Alpha*w. Default 10.
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// Solver is how each user's or item's least-squares problem is solved:
	// "cg", a few conjugate-gradient steps from the previous solution
	// (Takacs et al., 2011), or "cholesky", an exact solve. Default "cg".
	Solver string `yaml:"solver" json:"solver"`
	// CGSteps is the number of conjugate-gradient steps per solve.
	// Default 3.
	CGSteps int `yaml:"cg_steps" json:"cg_steps"`
	// Embedding is what becomes the tower's item embeddings: "fold_in",
	// the item factors times the inverse Cholesky factor of
	// (Y^T Y + lambda I), so that the tower's decayed sum of a user's item
	// embeddings dotted with an item's is ALS's fold-in score of the user's
	// history for that item; or "factors", the item factors as they are.
	// Default "fold_in".
	Embedding string `yaml:"embedding" json:"embedding"`
	// InitStd is the standard deviation of the random initial item
	// factors. Default 0.01.
	InitStd float64 `yaml:"init_std" json:"init_std"`
	// MinCount drops items with fewer events (they stay unknown to the
	// model). Default 1.
	MinCount int `yaml:"min_count" json:"min_count"`
	// TypeWeights overrides DefaultTypeWeights by type name: the weight of
	// each event in a pair's confidence; a type of weight 0 is ignored.
	TypeWeights map[string]float32 `yaml:"type_weights" json:"type_weights,omitempty"`
	// EventTypes are the type names in type-code order; nil means
	// schemas.DefaultEventTypes().
	EventTypes []string `yaml:"-" json:"-"`
	// Seed seeds the initial item factors; the same seed and input give
	// the same factors, bit for bit, on any machine and with any number of
	// Workers.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Workers is the number of goroutines solving rows; 0 means GOMAXPROCS.
	// Each row is solved by one goroutine with the same operations, so the
	// result does not depend on it.
	Workers int `yaml:"workers" json:"-"`
}

// ALS solvers and embeddings.
const (
	ALSSolverCG          = "cg"
	ALSSolverCholesky    = "cholesky"
	ALSEmbeddingFoldIn   = "fold_in"
	ALSEmbeddingFactors  = "factors"
	defaultALSIterations = 10
	defaultALSReg        = 0.1
	defaultALSAlpha      = 10
	defaultALSCGSteps    = 3
	defaultALSInitStd    = 0.01
	// alsBlock is the number of rows a worker takes at a time.
	alsBlock = 256
	// alsGramChunks fixes how the Gram matrix sum is split, so that its
	// rounding does not depend on the number of workers.
	alsGramChunks = 64
)

// WithDefaults returns c with every zero field set to its default.
func (c ALSConfig) WithDefaults() ALSConfig {
	c.Dim = cmp.Or(c.Dim, DefaultEmbeddingDim)
	c.Iterations = cmp.Or(c.Iterations, defaultALSIterations)
	c.CGSteps = cmp.Or(c.CGSteps, defaultALSCGSteps)
	c.MinCount = cmp.Or(c.MinCount, 1)
	c.Workers = cmp.Or(c.Workers, runtime.GOMAXPROCS(0))
	c.Regularization = cmp.Or(c.Regularization, defaultALSReg)
	c.Alpha = cmp.Or(c.Alpha, defaultALSAlpha)
	if c.Solver == "" {
		c.Solver = ALSSolverCG
	}
	if c.Embedding == "" {
		c.Embedding = ALSEmbeddingFoldIn
	}
	c.InitStd = cmp.Or(c.InitStd, defaultALSInitStd)
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c ALSConfig) Validate() error {
	switch {
	case c.Dim <= 0 || c.Dim > 1024:
		return fmt.Errorf("dim: must be in [1, 1024], got %d", c.Dim)
	case c.Iterations <= 0:
		return fmt.Errorf("iterations: must be > 0, got %d", c.Iterations)
	case !(c.Regularization > 0) || math.IsInf(c.Regularization, 0):
		return fmt.Errorf("regularization: must be > 0, got %g", c.Regularization)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("alpha: must be > 0, got %g", c.Alpha)
	case c.Solver != ALSSolverCG && c.Solver != ALSSolverCholesky:
		return fmt.Errorf("solver: must be %q or %q, got %q", ALSSolverCG, ALSSolverCholesky, c.Solver)
	case c.CGSteps <= 0:
		return fmt.Errorf("cg_steps: must be > 0, got %d", c.CGSteps)
	case c.Embedding != ALSEmbeddingFoldIn && c.Embedding != ALSEmbeddingFactors:
		return fmt.Errorf("embedding: must be %q or %q, got %q", ALSEmbeddingFoldIn, ALSEmbeddingFactors, c.Embedding)
	case !(c.InitStd > 0 && c.InitStd <= 1):
		return fmt.Errorf("init_std: must be in (0, 1], got %g", c.InitStd)
	case c.MinCount <= 0:
		return fmt.Errorf("min_count: must be > 0, got %d", c.MinCount)
	case c.Workers <= 0:
		return fmt.Errorf("workers: must be > 0, got %d", c.Workers)
	}
	_, err := resolveTypeWeights(c.EventTypes, c.TypeWeights)
	return err
}

// TrainALS learns item factors by alternating least squares on implicit
// feedback (Hu, Koren and Volinsky, 2008): every (user, item) cell is a
// preference, 1 where the user had events on the item and 0 elsewhere,
// fitted by x_u . y_i with confidence 1 + Alpha*w (w the pair's summed type
// weights; 1 for the empty cells). Each half-iteration solves every user's
// (then every item's) regularised weighted least squares with the other
// side fixed.
//
// With the default Embedding "fold_in", the tower's state (a decayed,
// type-weighted sum of the user's item embeddings) dotted with an item's
// embedding is y_i^T (Y^T Y + lambda I)^-1 sum_j w_j y_j: the ALS user
// solve without its per-user correction, applied to the user's live
// history, so the served model needs no user factors.
//
// progress, when not nil, is called now and then with the rows solved and
// the total. It returns ctx's error if ctx ends first.
func TrainALS(ctx context.Context, events []Interaction, cfg ALSConfig, progress func(done, total int)) (*FactorResult, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("als config: %w", err)
	}
	weights, _ := resolveTypeWeights(cfg.EventTypes, cfg.TypeWeights)
	m, err := buildImplicitMatrix(events, weights, cfg.MinCount)
	if err != nil {
		return nil, fmt.Errorf("train als: %w", err)
	}
	d := cfg.Dim
	t := &alsTrainer{cfg: cfg, m: m, d: d}
	t.x = make([]float64, m.users*d)
	t.y = make([]float64, len(m.items)*d)
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0xbb67ae8584caa73b))
	for i := range t.y {
		t.y[i] = rng.NormFloat64() * cfg.InitStd
	}
	t.total = cfg.Iterations * (m.users + len(m.items))
	t.progress = progress
	res := &FactorResult{Items: m.items, Counts: m.counts, Users: m.users, Pairs: m.nnz(), FromMs: m.fromMs, ToMs: m.toMs}
	for range cfg.Iterations {
		if err := t.half(ctx, t.x, t.y, m.userPtr, m.userItems, m.userWeights); err != nil {
			return nil, fmt.Errorf("train als: solve users: %w", err)
		}
		if err := t.half(ctx, t.y, t.x, m.itemPtr, m.itemUsers, m.itemWeights); err != nil {
			return nil, fmt.Errorf("train als: solve items: %w", err)
		}
		res.Loss = append(res.Loss, t.loss())
	}
	if progress != nil {
		progress(t.total, t.total)
	}
	if res.Embeddings, err = t.embeddings(); err != nil {
		return nil, fmt.Errorf("train als: %w", err)
	}
	scaleToMeanNorm(res.Embeddings)
	return res, nil
}

// alsTrainer holds the factors of both sides, row-major float64.
type alsTrainer struct {
	cfg      ALSConfig
	m        *implicitMatrix
	d        int
	x, y     []float64 // user and item factors
	done     int
	total    int
	progress func(done, total int)
}

// half solves every row of solve (users or items) with other fixed; ptr,
// idx and w are solve's side of the matrix.
func (t *alsTrainer) half(ctx context.Context, solve, other []float64, ptr, idx []int32, w []float32) error {
	d := t.d
	gram := t.gram(other)
	for k := 0; k < d; k++ {
		gram[k*d+k] += t.cfg.Regularization
	}
	rows := len(ptr) - 1
	blocks := (rows + alsBlock - 1) / alsBlock
	var next atomic.Int64
	var failed atomic.Bool
	doneBlocks := make(chan int, blocks)
	var wg sync.WaitGroup
	for range min(t.cfg.Workers, blocks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newALSScratch(d)
			for {
				b := int(next.Add(1) - 1)
				if b >= blocks || failed.Load() {
					return
				}
				if ctx.Err() != nil {
					failed.Store(true)
					return
				}
				lo, hi := b*alsBlock, min(rows, (b+1)*alsBlock)
				for r := lo; r < hi; r++ {
					items, ws := idx[ptr[r]:ptr[r+1]], w[ptr[r]:ptr[r+1]]
					xr := solve[r*d : (r+1)*d]
					if t.cfg.Solver == ALSSolverCholesky {
						t.choleskyRow(xr, gram, other, items, ws, s)
					} else {
						t.cgRow(xr, gram, other, items, ws, s)
					}
				}
				doneBlocks <- hi - lo
			}
		}()
	}
	go func() { wg.Wait(); close(doneBlocks) }()
	for n := range doneBlocks {
		t.done += n
		if t.progress != nil {
			t.progress(t.done, t.total)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// gram returns f^T f (D x D) for the row-major factors f. The rows are
// summed in alsGramChunks fixed ranges, in parallel, then the partial sums
// are added in range order: the rounding is the same whatever Workers is.
func (t *alsTrainer) gram(f []float64) []float64 {
	d := t.d
	rows := len(f) / d
	parts := make([][]float64, alsGramChunks)
	var wg sync.WaitGroup
	sem := make(chan struct{}, t.cfg.Workers)
	for c := range alsGramChunks {
		lo, hi := c*rows/alsGramChunks, (c+1)*rows/alsGramChunks
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g := make([]float64, d*d)
			for r := lo; r < hi; r++ {
				row := f[r*d : (r+1)*d]
				for a := range d {
					ra := row[a]
					ga := g[a*d : (a+1)*d]
					for b := a; b < d; b++ {
						ga[b] += float64(ra * row[b])
					}
				}
			}
			parts[c] = g
		}()
	}
	wg.Wait()
	g := make([]float64, d*d)
	for _, p := range parts {
		for i, v := range p {
			g[i] += v
		}
	}
	for a := range d {
		for b := a + 1; b < d; b++ {
			g[b*d+a] = g[a*d+b]
		}
	}
	return g
}

// alsScratch is one worker's buffers.
type alsScratch struct {
	r, p, ap, a, b []float64
}

func newALSScratch(d int) *alsScratch {
	return &alsScratch{
		r: make([]float64, d), p: make([]float64, d), ap: make([]float64, d),
		a: make([]float64, d*d), b: make([]float64, d),
	}
}

// cgRow improves x, warm-started from its value, towards the solution of
// (G + sum_k (c_k-1) y_k y_k^T) x = sum_k c_k y_k with CGSteps conjugate
// gradient steps; G is other^T other + lambda I.
func (t *alsTrainer) cgRow(x, gram, other []float64, idx []int32, w []float32, s *alsScratch) {
	d, alpha := t.d, t.cfg.Alpha
	r, p, ap := s.r, s.p, s.ap
	// r = b - A x
	matVecF64(gram, x, r)
	for i := range r {
		r[i] = -r[i]
	}
	for k, j := range idx {
		y := other[int(j)*d : (int(j)+1)*d]
		c := 1 + alpha*float64(w[k])
		axpyF64(c-float64((c-1)*dotF64(y, x)), y, r)
	}
	copy(p, r)
	rs := dotF64(r, r)
	for range t.cfg.CGSteps {
		if rs < 1e-20 {
			return
		}
		matVecF64(gram, p, ap)
		for k, j := range idx {
			y := other[int(j)*d : (int(j)+1)*d]
			c := 1 + alpha*float64(w[k])
			axpyF64(float64((c-1)*dotF64(y, p)), y, ap)
		}
		pap := dotF64(p, ap)
		if !(pap > 0) {
			return
		}
		a := rs / pap
		axpyF64(a, p, x)
		axpyF64(-a, ap, r)
		rsNew := dotF64(r, r)
		beta := rsNew / rs
		for i := range p {
			p[i] = r[i] + float64(beta*p[i])
		}
		rs = rsNew
	}
}

// choleskyRow sets x to the exact solution of the row's system.
func (t *alsTrainer) choleskyRow(x, gram, other []float64, idx []int32, w []float32, s *alsScratch) {
	d, alpha := t.d, t.cfg.Alpha
	a, b := s.a, s.b
	copy(a, gram)
	clear(b)
	for k, j := range idx {
		y := other[int(j)*d : (int(j)+1)*d]
		c := 1 + alpha*float64(w[k])
		axpyF64(c, y, b)
		for u := range d {
			cu := float64((c - 1) * y[u])
			au := a[u*d : (u+1)*d]
			for v := 0; v <= u; v++ {
				au[v] += float64(cu * y[v])
			}
		}
	}
	// The system is G + a sum of positive semi-definite terms with
	// G >= lambda I, so it is positive definite and the factorisation
	// cannot fail; keep the previous x if rounding says otherwise.
	if err := choleskyLower(a, d); err != nil {
		return
	}
	choleskySolve(a, d, b, x)
}

// loss returns the training objective divided by the number of pairs:
// sum over all cells of c (p - x.y)^2 plus lambda times the squared norms,
// computed without visiting the empty cells (their sum is
// sum_u x_u^T (Y^T Y) x_u).
func (t *alsTrainer) loss() float64 {
	d, m := t.d, t.m
	gram := t.gram(t.y)
	tmp := make([]float64, d)
	var total, norms float64
	for u := range m.users {
		xu := t.x[u*d : (u+1)*d]
		matVecF64(gram, xu, tmp)
		total += dotF64(xu, tmp)
		norms += dotF64(xu, xu)
		for k := m.userPtr[u]; k < m.userPtr[u+1]; k++ {
			j := m.userItems[k]
			s := dotF64(xu, t.y[int(j)*d:(int(j)+1)*d])
			c := 1 + t.cfg.Alpha*float64(m.userWeights[k])
			total += float64(c*(1-s)*(1-s)) - float64(s*s)
		}
	}
	for i := range len(m.items) {
		yi := t.y[i*d : (i+1)*d]
		norms += dotF64(yi, yi)
	}
	return (total + t.cfg.Regularization*norms) / float64(max(1, m.nnz()))
}

// embeddings returns the item rows the tower uses (see ALSConfig.Embedding).
func (t *alsTrainer) embeddings() ([][]float32, error) {
	d, n := t.d, len(t.m.items)
	rows := make([][]float32, n)
	var l []float64
	if t.cfg.Embedding == ALSEmbeddingFoldIn {
		l = t.gram(t.y)
		for k := range d {
			l[k*d+k] += t.cfg.Regularization
		}
		if err := choleskyLower(l, d); err != nil {
			return nil, fmt.Errorf("fold-in embedding: factor Y^T Y + lambda I: %w", err)
		}
	}
	e := make([]float64, d)
	for i := range n {
		y := t.y[i*d : (i+1)*d]
		if l != nil {
			forwardSolve(l, d, y, e)
			y = e
		}
		row := make([]float32, d)
		for j, v := range y {
			row[j] = float32(v)
		}
		rows[i] = row
	}
	return rows, nil
}
