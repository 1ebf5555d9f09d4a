package training

import (
	"context"
	"fmt"
	"slices"

	"github.com/recstream/recstream/scorers/models"
)

// Training methods: what TrainConfig.Method names.
const (
	// MethodItem2Vec is skip-gram with negative sampling over sessions
	// (TrainItem2Vec).
	MethodItem2Vec = "item2vec"
	// MethodBPR is matrix factorisation with Bayesian personalised ranking
	// (TrainBPR).
	MethodBPR = "bpr"
	// MethodALS is implicit-feedback alternating least squares (TrainALS).
	MethodALS = "als"
	// DefaultMethod is the method used when none is named: ALS, which tied
	// BPR on average in the prequential comparison of the three through the
	// real scorer, won on MovieLens 100K and the harder synthetic sets, and
	// is the least sensitive to its parameters (cmd/recstream/internal/evaluation's
	// package doc has the numbers).
	DefaultMethod = MethodALS
)

// Methods returns the training methods, in the order they are listed in
// help texts.
func Methods() []string { return []string{MethodItem2Vec, MethodBPR, MethodALS} }

// TrainConfig picks a training method and holds each method's parameters.
// The zero value trains DefaultMethod with its defaults.
type TrainConfig struct {
	// Method is one of Methods(); empty means DefaultMethod.
	Method string `yaml:"method" json:"method"`
	// Item2Vec, BPR and ALS are the parameters of each method; only the
	// chosen method's are used.
	Item2Vec Item2VecConfig `yaml:"item2vec" json:"item2vec"`
	BPR      BPRConfig      `yaml:"bpr" json:"bpr"`
	ALS      ALSConfig      `yaml:"als" json:"als"`
}

// WithDefaults returns c with every zero field set to its default.
func (c TrainConfig) WithDefaults() TrainConfig {
	if c.Method == "" {
		c.Method = DefaultMethod
	}
	c.Item2Vec = c.Item2Vec.WithDefaults()
	c.BPR = c.BPR.WithDefaults()
	c.ALS = c.ALS.WithDefaults()
	return c
}

// Validate checks c (after WithDefaults): the method, and the parameters of
// the chosen method; errors name the YAML field.
func (c TrainConfig) Validate() error {
	var err error
	switch c.Method {
	case MethodItem2Vec:
		err = c.Item2Vec.Validate()
	case MethodBPR:
		err = c.BPR.Validate()
	case MethodALS:
		err = c.ALS.Validate()
	default:
		return fmt.Errorf("method: must be one of %v, got %q", Methods(), c.Method)
	}
	if err != nil {
		return fmt.Errorf("%s.%w", c.Method, err)
	}
	return nil
}

// Params returns the chosen method's parameters, defaults filled in: what
// a model's metadata records.
func (c TrainConfig) Params() any {
	c = c.WithDefaults()
	switch c.Method {
	case MethodItem2Vec:
		return c.Item2Vec
	case MethodBPR:
		return c.BPR
	default:
		return c.ALS
	}
}

// TrainedEmbeddings is the output of Train, whatever the method: item
// embeddings for the built-in user tower.
type TrainedEmbeddings struct {
	// Method is the method that learned them.
	Method string
	// Items are the item ids, most frequent first (ties by id).
	Items []string
	// Embeddings holds one row per item (Dim values).
	Embeddings [][]float32
	// Counts is each item's number of events, for the popularity prior.
	Counts []int64
	// FromMs and ToMs bound the event times of the interactions used.
	FromMs, ToMs int64
	// Summary says in one line what was learned from what, for people.
	Summary string
	// Loss is the training loss per epoch or iteration (BPR, ALS); nil for
	// item2vec.
	Loss []float64
}

// ModelSpec returns the spec WriteModelDir needs to write these embeddings
// as a built-in model, with training (recorded in the metadata as
// "training") and the scoring parameters left at their defaults.
func (t *TrainedEmbeddings) ModelSpec(training any) models.ModelSpec {
	return models.ModelSpec{
		Items: t.Items, Embeddings: t.Embeddings, Counts: t.Counts,
		DataFromMs: t.FromMs, DataToMs: t.ToMs, Training: training,
	}
}

// Train learns item embeddings from events with cfg's method. The result
// depends only on events and the method's parameters (seed included).
// progress, when not nil, is called now and then with the work done and
// the total, in units of the method. It returns ErrNoTrainingData (wrapped)
// when no event has a usable item, and ctx's error if ctx ends first.
func Train(ctx context.Context, events []Interaction, cfg TrainConfig, progress func(done, total int)) (*TrainedEmbeddings, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	out := &TrainedEmbeddings{Method: cfg.Method}
	switch cfg.Method {
	case MethodItem2Vec:
		res, err := TrainItem2Vec(ctx, events, cfg.Item2Vec, progress)
		if err != nil {
			return nil, err
		}
		out.Items, out.Embeddings, out.Counts, out.FromMs, out.ToMs = res.Items, res.Embeddings, res.Counts, res.FromMs, res.ToMs
		out.Summary = fmt.Sprintf("learned %d item embeddings (item2vec) from %d sessions, %d pairs", len(res.Items), res.Sequences, res.Pairs)
	case MethodBPR, MethodALS:
		var res *FactorResult
		var err error
		if cfg.Method == MethodBPR {
			res, err = TrainBPR(ctx, events, cfg.BPR, progress)
		} else {
			res, err = TrainALS(ctx, events, cfg.ALS, progress)
		}
		if err != nil {
			return nil, err
		}
		out.Items, out.Embeddings, out.Counts, out.FromMs, out.ToMs = res.Items, res.Embeddings, res.Counts, res.FromMs, res.ToMs
		out.Loss = slices.Clone(res.Loss)
		last := 0.0
		if len(res.Loss) > 0 {
			last = res.Loss[len(res.Loss)-1]
		}
		out.Summary = fmt.Sprintf("learned %d item factors (%s) from %d users, %d user-item pairs, final loss %.4g",
			len(res.Items), cfg.Method, res.Users, res.Pairs, last)
	}
	return out, nil
}
