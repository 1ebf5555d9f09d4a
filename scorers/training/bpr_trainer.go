package training

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/recstream/recstream/scorers/models"
)

// BPRConfig configures TrainBPR. The zero value of each field means its
// documented default.
type BPRConfig struct {
	// Dim is the factor width D. Default 64.
	Dim int `yaml:"dim" json:"dim"`
	// Epochs is the number of passes; one pass draws as many (user,
	// positive, negative) triples as there are (user, item) pairs.
	// Default 50 (20 left HR@10 on MovieLens 100K at 0.150, 50 reached
	// 0.168; 100 added 0.008 for twice the time).
	Epochs int `yaml:"epochs" json:"epochs"`
	// LearningRate is the SGD step at the start, decayed linearly to 1e-2
	// of it by the end. Default 0.05.
	LearningRate float64 `yaml:"learning_rate" json:"learning_rate"`
	// Regularization is the L2 penalty on the factors a step touches.
	// Default 0.005.
	Regularization float64 `yaml:"regularization" json:"regularization"`
	// InitStd is the standard deviation of the random initial factors.
	// Default 0.1.
	InitStd float64 `yaml:"init_std" json:"init_std"`
	// MinCount drops items with fewer events (they stay unknown to the
	// model). Default 1.
	MinCount int `yaml:"min_count" json:"min_count"`
	// TypeWeights overrides DefaultTypeWeights by type name. BPR treats an
	// interaction as a positive whatever its weight; a type of weight 0 is
	// ignored.
	TypeWeights map[string]float32 `yaml:"type_weights" json:"type_weights,omitempty"`
	// EventTypes are the type names in type-code order; nil means
	// schemas.DefaultEventTypes().
	EventTypes []string `yaml:"-" json:"-"`
	// Seed seeds the random numbers; the same seed and input give the same
	// factors, bit for bit, on any machine.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// Defaults of BPRConfig.
const (
	DefaultEmbeddingDim  = 64
	defaultBPREpochs     = 50
	defaultBPRLR         = 0.05
	defaultBPRReg        = 0.005
	defaultBPRInitStd    = 0.1
	bprFinalLRFraction   = 1e-2
	bprMaxNegativeRedraw = 8
)

// WithDefaults returns c with every zero field set to its default.
func (c BPRConfig) WithDefaults() BPRConfig {
	c.Dim = cmp.Or(c.Dim, DefaultEmbeddingDim)
	c.Epochs = cmp.Or(c.Epochs, defaultBPREpochs)
	c.MinCount = cmp.Or(c.MinCount, 1)
	c.LearningRate = cmp.Or(c.LearningRate, defaultBPRLR)
	c.Regularization = cmp.Or(c.Regularization, defaultBPRReg)
	c.InitStd = cmp.Or(c.InitStd, defaultBPRInitStd)
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c BPRConfig) Validate() error {
	switch {
	case c.Dim <= 0 || c.Dim > 4096:
		return fmt.Errorf("dim: must be in [1, 4096], got %d", c.Dim)
	case c.Epochs <= 0:
		return fmt.Errorf("epochs: must be > 0, got %d", c.Epochs)
	case !(c.LearningRate > 0 && c.LearningRate <= 1):
		return fmt.Errorf("learning_rate: must be in (0, 1], got %g", c.LearningRate)
	case !(c.Regularization >= 0 && c.Regularization < 1):
		return fmt.Errorf("regularization: must be in [0, 1), got %g", c.Regularization)
	case !(c.InitStd > 0 && c.InitStd <= 1):
		return fmt.Errorf("init_std: must be in (0, 1], got %g", c.InitStd)
	case c.MinCount <= 0:
		return fmt.Errorf("min_count: must be > 0, got %d", c.MinCount)
	}
	_, err := resolveTypeWeights(c.EventTypes, c.TypeWeights)
	return err
}

// FactorResult is what TrainBPR or TrainALS learned.
type FactorResult struct {
	// Items are the item ids, most frequent first (ties by id).
	Items []string
	// Embeddings holds one row of Dim values per item: the item factors,
	// scaled by one common factor so that their mean L2 norm is 1 (see
	// ALSConfig.Embedding for what ALS writes).
	Embeddings [][]float32
	// Counts is each item's number of events.
	Counts []int64
	// Users is the number of users, Pairs the number of (user, item)
	// pairs trained on.
	Users, Pairs int
	// Loss holds the training loss after each epoch or iteration: BPR's
	// mean -log sigmoid(x_uij) over the epoch's triples, ALS's weighted
	// squared error plus penalty, divided by the number of pairs.
	Loss []float64
	// FromMs and ToMs bound the event times of the interactions used.
	FromMs, ToMs int64
}

// TrainBPR learns item factors by matrix factorisation with Bayesian
// personalised ranking (Rendle et al., 2009): stochastic gradient steps
// that push a user's score of an item they interacted with above that of a
// random item they did not. The user tower then scores an item by the
// decayed, type-weighted sum of the factors of the user's items, dotted
// with the item's factors: items liked by the same users get aligned
// factors, and popular items larger ones.
//
// It runs on one goroutine so that the result depends only on the input
// and cfg.Seed. progress, when not nil, is called now and then with the
// triples done and the total. It returns ctx's error if ctx ends first.
func TrainBPR(ctx context.Context, events []Interaction, cfg BPRConfig, progress func(done, total int)) (*FactorResult, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bpr config: %w", err)
	}
	weights, _ := resolveTypeWeights(cfg.EventTypes, cfg.TypeWeights)
	m, err := buildImplicitMatrix(events, weights, cfg.MinCount)
	if err != nil {
		return nil, fmt.Errorf("train bpr: %w", err)
	}
	nItems, d := len(m.items), cfg.Dim
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6a09e667f3bcc909))
	p := make([]float32, m.users*d)
	q := make([]float32, nItems*d)
	for i := range p {
		p[i] = float32(rng.NormFloat64() * cfg.InitStd)
	}
	for i := range q {
		q[i] = float32(rng.NormFloat64() * cfg.InitStd)
	}
	// pairUser maps each pair to its user, so that a positive is drawn in
	// O(1): users are then weighted by their number of pairs, as in
	// Rendle's sampling of (u, i) uniformly from the data.
	pairUser := make([]int32, m.nnz())
	for u := range m.users {
		for k := m.userPtr[u]; k < m.userPtr[u+1]; k++ {
			pairUser[k] = int32(u)
		}
	}

	perEpoch := m.nnz()
	total := cfg.Epochs * perEpoch
	step := max(1, total/200)
	lr0, reg := cfg.LearningRate, float32(cfg.Regularization)
	diff := make([]float32, d)
	res := &FactorResult{Items: m.items, Counts: m.counts, Users: m.users, Pairs: m.nnz(), FromMs: m.fromMs, ToMs: m.toMs}
	done := 0
	for range cfg.Epochs {
		var loss float64
		for range perEpoch {
			if done%step == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("train bpr: %w", err)
				}
				if progress != nil {
					progress(done, total)
				}
			}
			lr := float32(lr0 * max(bprFinalLRFraction, 1-float64(done)/float64(total)))
			done++
			k := rng.IntN(perEpoch)
			u := pairUser[k]
			pos := m.userItems[k]
			own := m.userItems[m.userPtr[u]:m.userPtr[u+1]]
			neg := int32(rng.IntN(nItems))
			for try := 0; try < bprMaxNegativeRedraw && isMember(own, neg); try++ {
				neg = int32(rng.IntN(nItems))
			}
			if neg == pos {
				continue // a user who has nearly every item: nothing to rank
			}
			pu := p[int(u)*d : int(u)*d+d]
			qi := q[int(pos)*d : int(pos)*d+d]
			qj := q[int(neg)*d : int(neg)*d+d]
			var x float32
			for f := range d {
				diff[f] = qi[f] - qj[f]
				x += float32(pu[f] * diff[f])
			}
			// d/dx log sigmoid(x) = sigmoid(-x) = 1 / (1 + e^x).
			ex := models.ExpDet(float64(x))
			g := float32(1 / (1 + ex))
			if x > -30 {
				loss += math.Log1p(1 / ex) // -log sigmoid(x)
			} else {
				loss -= float64(x)
			}
			for f := range d {
				puf := pu[f]
				pu[f] += float32(lr * float32(float32(g*diff[f])-float32(reg*puf)))
				qi[f] += float32(lr * float32(float32(g*puf)-float32(reg*qi[f])))
				qj[f] += float32(lr * float32(float32(-g*puf)-float32(reg*qj[f])))
			}
		}
		res.Loss = append(res.Loss, loss/float64(perEpoch))
	}
	if progress != nil {
		progress(total, total)
	}
	res.Embeddings = make([][]float32, nItems)
	for i := range nItems {
		res.Embeddings[i] = slices.Clone(q[i*d : (i+1)*d])
	}
	scaleToMeanNorm(res.Embeddings)
	return res, nil
}

// isMember reports whether x is in sorted.
func isMember(sorted []int32, x int32) bool {
	_, ok := slices.BinarySearch(sorted, x)
	return ok
}
