package training

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/recstream/recstream/scorers/models"
)

// Item2VecConfig configures TrainItem2Vec. The zero value of each field
// means its documented default.
type Item2VecConfig struct {
	// Dim is the embedding width D. Default 64.
	Dim int `yaml:"dim" json:"dim"`
	// Window is the most positions on each side of an item that count as
	// its context (each position draws a window in [1, Window], as
	// word2vec does). Default 5.
	Window int `yaml:"window" json:"window"`
	// Negatives is the number of negative samples per positive pair.
	// Default 5.
	Negatives int `yaml:"negatives" json:"negatives"`
	// Epochs is the number of passes over the sequences. Default 5.
	Epochs int `yaml:"epochs" json:"epochs"`
	// LearningRate is the starting rate, decayed linearly to 1e-4 of it.
	// Default 0.025.
	LearningRate float64 `yaml:"learning_rate" json:"learning_rate"`
	// MinCount drops items with fewer interactions (they stay unknown to
	// the model). Default 1.
	MinCount int `yaml:"min_count" json:"min_count"`
	// Subsample is word2vec's threshold t for dropping frequent items (an
	// item of frequency f is kept with probability (sqrt(f/t)+1)*t/f).
	// Default 1e-3; negative disables it.
	Subsample float64 `yaml:"subsample" json:"subsample"`
	// SessionGap splits a user's history where two interactions are further
	// apart; items of different sessions are never each other's context.
	// Default 30m.
	SessionGap time.Duration `yaml:"session_gap" json:"session_gap"`
	// PopularityScale multiplies each unit-length embedding by
	// ln(1+count)^PopularityScale (then all by one factor, to a mean norm
	// of 1). Skip-gram vectors ignore how popular an item is (their dot
	// products approximate pointwise mutual information, which favours
	// rare items), while the user tower ranks by state . embedding: without
	// it the tower ranks a category's tail as high as its head. Measured
	// on the generator's data and MovieLens 100K, 1 took HR@10 from 0.12
	// to 0.31 and from 0.05 to 0.15. Default 1; negative keeps unit rows.
	PopularityScale float64 `yaml:"popularity_scale" json:"popularity_scale"`
	// SkipTypes are type codes whose interactions are ignored.
	SkipTypes []uint8 `yaml:"skip_types" json:"skip_types,omitempty"`
	// Seed seeds the random numbers; the same seed and input give the same
	// embeddings, bit for bit, on any machine.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// Defaults of Item2VecConfig.
const (
	DefaultItem2VecDim = 64
	defaultWindow      = 5
	defaultNegatives   = 5
	defaultEpochs      = 5
	defaultLR          = 0.025
	defaultSubsample   = 1e-3
	defaultSessionGap  = 30 * time.Minute
	// defaultPopularityScale is PopularityScale's default.
	defaultPopularityScale = 1
)

// WithDefaults returns c with every zero field set to its default.
func (c Item2VecConfig) WithDefaults() Item2VecConfig {
	c.Dim = cmp.Or(c.Dim, DefaultItem2VecDim)
	c.Window = cmp.Or(c.Window, defaultWindow)
	c.Negatives = cmp.Or(c.Negatives, defaultNegatives)
	c.Epochs = cmp.Or(c.Epochs, defaultEpochs)
	c.MinCount = cmp.Or(c.MinCount, 1)
	c.LearningRate = cmp.Or(c.LearningRate, defaultLR)
	c.Subsample = cmp.Or(c.Subsample, defaultSubsample)
	c.SessionGap = cmp.Or(c.SessionGap, defaultSessionGap)
	c.PopularityScale = cmp.Or(c.PopularityScale, defaultPopularityScale)
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c Item2VecConfig) Validate() error {
	switch {
	case c.Dim <= 0 || c.Dim > 4096:
		return fmt.Errorf("dim: must be in [1, 4096], got %d", c.Dim)
	case c.Window <= 0:
		return fmt.Errorf("window: must be > 0, got %d", c.Window)
	case c.Negatives <= 0:
		return fmt.Errorf("negatives: must be > 0, got %d", c.Negatives)
	case c.Epochs <= 0:
		return fmt.Errorf("epochs: must be > 0, got %d", c.Epochs)
	case !(c.LearningRate > 0 && c.LearningRate <= 1):
		return fmt.Errorf("learning_rate: must be in (0, 1], got %g", c.LearningRate)
	case c.MinCount <= 0:
		return fmt.Errorf("min_count: must be > 0, got %d", c.MinCount)
	case math.IsNaN(c.PopularityScale) || c.PopularityScale > 4:
		return fmt.Errorf("popularity_scale: must be <= 4 (negative: none), got %g", c.PopularityScale)
	case c.SessionGap < 0:
		return fmt.Errorf("session_gap: must be >= 0, got %s", c.SessionGap)
	}
	return nil
}

// Item2VecResult is what TrainItem2Vec learned.
type Item2VecResult struct {
	// Items are the item ids, most frequent first (ties by id).
	Items []string
	// Embeddings holds one row of Dim values per item: centred, whitened,
	// normalised, then scaled by popularity (see PopularityScale).
	Embeddings [][]float32
	// Counts is each item's number of interactions.
	Counts []int64
	// Sequences is the number of user sessions trained on, Pairs the
	// number of (item, context) pairs seen over all epochs.
	Sequences int
	Pairs     int64
	// FromMs and ToMs bound the event times of the interactions used.
	FromMs, ToMs int64
}

// ErrNoTrainingData is returned when no interaction has a usable item.
var ErrNoTrainingData = errors.New("no interactions with an item to train on")

// TrainItem2Vec learns item embeddings from an interaction history with
// skip-gram and negative sampling (item2vec): items that appear near each
// other in users' sessions get similar vectors. It runs on one goroutine so
// that the result depends only on the input and cfg.Seed. progress, when
// not nil, is called now and then with the sequences done and the total
// (over all epochs). It returns ctx's error if ctx ends first.
func TrainItem2Vec(ctx context.Context, events []Interaction, cfg Item2VecConfig, progress func(done, total int)) (*Item2VecResult, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("item2vec config: %w", err)
	}
	res, seqs, err := buildSequences(events, cfg)
	if err != nil {
		return nil, fmt.Errorf("train item2vec: %w", err)
	}
	t := newSGNS(res.Counts, cfg)
	total := cfg.Epochs * len(seqs)
	var totalItems int64
	for _, s := range seqs {
		totalItems += int64(len(s))
	}
	work := int64(cfg.Epochs) * totalItems
	step := max(1, total/200)
	done := 0
	var seen int64
	kept := make([]int32, 0, 64)
	for range cfg.Epochs {
		for _, seq := range seqs {
			if done%step == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("train item2vec: %w", err)
				}
				if progress != nil {
					progress(done, total)
				}
			}
			lr := cfg.LearningRate * max(1e-4, 1-float64(seen)/float64(work+1))
			kept = t.subsample(kept[:0], seq)
			res.Pairs += t.trainSequence(kept, float32(lr))
			seen += int64(len(seq))
			done++
		}
	}
	if progress != nil {
		progress(total, total)
	}
	res.Embeddings = t.normalisedInputs()
	if cfg.PopularityScale > 0 {
		scaleByPopularity(res.Embeddings, res.Counts, cfg.PopularityScale)
	}
	res.Sequences = len(seqs)
	return res, nil
}

// buildSequences counts the items, keeps those with at least MinCount
// interactions, and returns each user's sessions as item indices (0-based),
// ordered by user id then time, with immediate repeats removed.
func buildSequences(events []Interaction, cfg Item2VecConfig) (*Item2VecResult, [][]int32, error) {
	use := make([]int32, 0, len(events))
	counts := map[string]int64{}
	for i, e := range events {
		if e.Item == "" || slices.Contains(cfg.SkipTypes, e.Type) {
			continue
		}
		use = append(use, int32(i))
		counts[e.Item]++
	}
	res := &Item2VecResult{FromMs: math.MaxInt64, ToMs: math.MinInt64}
	var index map[string]int32
	res.Items, res.Counts, index = itemVocabulary(counts, cfg.MinCount)
	if len(res.Items) == 0 {
		return nil, nil, ErrNoTrainingData
	}
	// Stable: a user's interactions with equal times keep their input order.
	slices.SortStableFunc(use, func(a, b int32) int {
		ea, eb := &events[a], &events[b]
		if c := cmp.Compare(ea.User, eb.User); c != 0 {
			return c
		}
		return cmp.Compare(ea.TsMs, eb.TsMs)
	})
	gap := cfg.SessionGap.Milliseconds()
	var seqs [][]int32
	var cur []int32
	flush := func() {
		if len(cur) >= 2 {
			seqs = append(seqs, cur)
		}
		cur = nil
	}
	for k, i := range use {
		e := &events[i]
		item, ok := index[e.Item]
		if !ok {
			continue
		}
		res.FromMs = min(res.FromMs, e.TsMs)
		res.ToMs = max(res.ToMs, e.TsMs)
		if k > 0 {
			prev := &events[use[k-1]]
			if prev.User != e.User || (gap > 0 && e.TsMs-prev.TsMs > gap) {
				flush()
			}
		}
		if len(cur) > 0 && cur[len(cur)-1] == item {
			continue
		}
		cur = append(cur, item)
	}
	flush()
	if len(seqs) == 0 {
		return nil, nil, fmt.Errorf("%w: no session has two different items", ErrNoTrainingData)
	}
	return res, seqs, nil
}

// sgns holds the skip-gram model: input vectors (the embeddings) and output
// vectors, both n x dim, row-major.
type sgns struct {
	dim, window, negatives int
	in, out                []float32
	grad                   []float32
	keep                   []float64 // per item: probability of keeping it
	table                  []int32   // unigram^0.75 sampling table
	sigmoid                []float32 // sigmoid on [-sigmoidMax, sigmoidMax]
	rng                    *rand.Rand
}

const (
	sigmoidMax   = 6
	sigmoidSteps = 1000
	tableSize    = 1 << 20
)

func newSGNS(counts []int64, cfg Item2VecConfig) *sgns {
	n := len(counts)
	t := &sgns{
		dim:       cfg.Dim,
		window:    cfg.Window,
		negatives: cfg.Negatives,
		in:        make([]float32, n*cfg.Dim),
		out:       make([]float32, n*cfg.Dim),
		grad:      make([]float32, cfg.Dim),
		keep:      make([]float64, n),
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
	for i := range t.in {
		t.in[i] = float32((t.rng.Float64() - 0.5) / float64(cfg.Dim))
	}
	var total int64
	for _, c := range counts {
		total += c
	}
	for i, c := range counts {
		t.keep[i] = 1
		if cfg.Subsample > 0 {
			f := float64(c) / float64(total)
			t.keep[i] = min(1, (math.Sqrt(f/cfg.Subsample)+1)*cfg.Subsample/f)
		}
	}
	// Negative sampling table: item i fills a share of it proportional to
	// count^0.75, computed as sqrt(c)*sqrt(sqrt(c)) because math.Sqrt is
	// exactly rounded everywhere (math.Pow goes through math.Exp).
	weights := make([]float64, n)
	var sum float64
	for i, c := range counts {
		r := math.Sqrt(float64(c))
		weights[i] = r * math.Sqrt(r)
		sum += weights[i]
	}
	t.table = make([]int32, tableSize)
	item, acc := 0, weights[0]/sum
	for j := range t.table {
		t.table[j] = int32(item)
		if float64(j+1)/tableSize > acc && item < n-1 {
			item++
			acc += weights[item] / sum
		}
	}
	t.sigmoid = make([]float32, sigmoidSteps+1)
	for i := range t.sigmoid {
		x := (float64(i)/sigmoidSteps*2 - 1) * sigmoidMax
		t.sigmoid[i] = float32(1 / (1 + models.ExpDet(-x)))
	}
	return t
}

// subsample appends the items of seq that survive frequent-item dropping.
func (t *sgns) subsample(dst, seq []int32) []int32 {
	for _, it := range seq {
		if k := t.keep[it]; k >= 1 || t.rng.Float64() < k {
			dst = append(dst, it)
		}
	}
	return dst
}

// trainSequence runs one skip-gram pass over seq and returns the number of
// positive pairs trained.
func (t *sgns) trainSequence(seq []int32, lr float32) int64 {
	var pairs int64
	for i, center := range seq {
		b := 1 + t.rng.IntN(t.window)
		for j := max(0, i-b); j <= min(len(seq)-1, i+b); j++ {
			if j == i || seq[j] == center {
				continue
			}
			t.update(seq[j], center, lr)
			pairs++
		}
	}
	return pairs
}

// update trains the input vector of src to predict target against
// Negatives random items (word2vec's skip-gram step).
func (t *sgns) update(src, target int32, lr float32) {
	d := t.dim
	v := t.in[int(src)*d : int(src)*d+d]
	grad := t.grad
	clear(grad)
	for k := 0; k <= t.negatives; k++ {
		out, label := target, float32(1)
		if k > 0 {
			out = t.table[t.rng.IntN(tableSize)]
			if out == target {
				continue
			}
			label = 0
		}
		u := t.out[int(out)*d : int(out)*d+d]
		var dot float32
		for j := range v {
			dot += float32(v[j] * u[j])
		}
		g := (label - t.sig(dot)) * lr
		for j := range v {
			grad[j] += float32(g * u[j])
			u[j] += float32(g * v[j])
		}
	}
	for j := range v {
		v[j] += grad[j]
	}
}

func (t *sgns) sig(x float32) float32 {
	switch {
	case x >= sigmoidMax:
		return 1
	case x <= -sigmoidMax:
		return 0
	}
	return t.sigmoid[int(float32(x+sigmoidMax)*(sigmoidSteps/(2*sigmoidMax)))]
}

// whiten replaces the row-major rows of width d (centred) by L^-1 row,
// where L L^T is their covariance plus 1e-3 I: the directions the rows
// crowd into are shrunk and the rest stretched, so that unrelated rows end
// up nearly orthogonal. The covariance is summed in row order: the result
// does not depend on the platform.
func whiten(rows []float64, d int) {
	n := len(rows) / d
	if n == 0 {
		return
	}
	g := make([]float64, d*d)
	for i := range n {
		r := rows[i*d : (i+1)*d]
		for a := range d {
			ga := g[a*d : (a+1)*d]
			for b := 0; b <= a; b++ {
				ga[b] += float64(r[a] * r[b])
			}
		}
	}
	for a := range d {
		for b := 0; b <= a; b++ {
			g[a*d+b] /= float64(n)
		}
		g[a*d+a] += 1e-3
	}
	if choleskyLower(g, d) != nil {
		return // cannot happen with the 1e-3 ridge; keep the rows as they are
	}
	out := make([]float64, d)
	for i := range n {
		r := rows[i*d : (i+1)*d]
		forwardSolve(g, d, r, out)
		copy(r, out)
	}
}

// scaleByPopularity multiplies row i by ln(1+counts[i])^exp, then every row
// by one factor so that their mean norm is 1. math.Pow and math.Log1p are
// not guaranteed bit-identical across platforms, so the factor is computed
// with expDet and a log from math.Frexp and exactly rounded operations.
func scaleByPopularity(rows [][]float32, counts []int64, exp float64) {
	for i, row := range rows {
		f := powDet(logDet(1+float64(counts[i])), exp)
		for j := range row {
			row[j] = float32(float64(row[j]) * f)
		}
	}
	scaleToMeanNorm(rows)
}

// logDet returns ln(x) for x >= 1 with IEEE operations only: x = m * 2^e
// with m in [1, 2), and ln(m) by the series of atanh((m-1)/(m+1)).
func logDet(x float64) float64 {
	frac, e := math.Frexp(x) // frac in [0.5, 1)
	m := float64(frac * 2)
	e--
	z := (m - 1) / (m + 1) // in [0, 1/3)
	z2 := float64(z * z)
	// 2 * sum z^(2k+1)/(2k+1); 30 terms leave an error below 1e-28.
	sum, term := 0.0, z
	for k := 0; k < 30; k++ {
		sum += term / float64(2*k+1)
		term = float64(term * z2)
	}
	return float64(2*sum) + float64(float64(e)*math.Ln2)
}

// powDet returns x^y for x > 0 through expDet and logDet.
func powDet(x, y float64) float64 {
	if x <= 0 {
		return 0
	}
	if x < 1 {
		return 1 / powDet(1/x, y)
	}
	return models.ExpDet(float64(y * logDet(x)))
}

// normalisedInputs returns the input vectors centred, whitened and scaled
// to unit length.
func (t *sgns) normalisedInputs() [][]float32 {
	n := len(t.in) / t.dim
	rows := make([][]float32, n)
	// Skip-gram vectors share a common direction (every item is pushed
	// away from the same negatives) and crowd into a few others, so items
	// of unrelated clusters look alike; once rows are scaled by
	// popularity, the popular items of any cluster then outrank the user's
	// own. The rows are centred and whitened (PCA whitening, through the
	// Cholesky factor of their covariance) before they are normalised: on
	// the generator's 100-category data that took the tower's HR@10 from
	// 0.04 to 0.34 (0.23 without the popularity scale).
	mean := make([]float64, t.dim)
	for i := range n {
		for j, v := range t.in[i*t.dim : (i+1)*t.dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	centred := make([]float64, n*t.dim)
	for i := range n {
		for j, v := range t.in[i*t.dim : (i+1)*t.dim] {
			centred[i*t.dim+j] = float64(v) - mean[j]
		}
	}
	whiten(centred, t.dim)
	for i := range n {
		row := make([]float32, t.dim)
		for j := range row {
			row[j] = float32(centred[i*t.dim+j])
		}
		var ss float64
		for _, v := range row {
			ss += float64(float64(v) * float64(v))
		}
		if ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for j := range row {
				row[j] = float32(float64(row[j]) * inv)
			}
		}
		rows[i] = row
	}
	return rows
}
