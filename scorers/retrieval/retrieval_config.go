package retrieval

import (
	"cmp"
	"fmt"
	"slices"
)

// Config is the whole two-stage recommender without a learned model: the
// index, the four sources, their limits and the blend ranker's weights.
// The zero value of each field means its documented default. The defaults
// were chosen on the first half in time of MovieLens 100K (warmed up on
// its first quarter, scored on the second, seen items excluded), then
// frozen: `recstream eval` reports on the second half, which the tuning
// never saw.
type Config struct {
	// Index configures the streaming item index.
	Index IndexConfig `yaml:"index"`
	// Recent and Decay configure the co-visitation source: how many of the
	// user's newest items vote (default 10) and the factor between
	// consecutive voters (default 0.7).
	Recent int     `yaml:"recent"`
	Decay  float64 `yaml:"decay"`
	// NormA and NormB are the item-to-item sources' popularity
	// normalisation (see Normalisation). The defaults (both 0 given) are A
	// 0, B -0.25: raw weights, leaning to popular candidates, which won on
	// the tuning half. Set NormA to 0.5 and NormB to 0.5 for the cosine.
	NormA float64 `yaml:"norm_a"`
	NormB float64 `yaml:"norm_b"`
	// Limits are the most candidates each source contributes.
	Limits SourceLimits `yaml:"limits"`
	// Weights are the blend ranker's weights per source.
	Weights SourceWeights `yaml:"weights"`
}

// SourceLimits are the most candidates each source contributes per user;
// 0 means the default (covisit 50, transition 20, trending 20, popular
// 20: on the tuning half, 200/50/50/100 scored the same HR@10 within 0.001
// at half the speed).
type SourceLimits struct {
	Covisit    int `yaml:"covisit"`
	Transition int `yaml:"transition"`
	Trending   int `yaml:"trending"`
	Popular    int `yaml:"popular"`
}

// SourceWeights are the blend ranker's weight of each source's normalised
// score. All zero means the defaults: covisit 1, transition 0.05,
// trending 0, popular 0.02 (co-visits decide, the others order what they
// leave, a cold user's list; trending still proposes candidates, for a
// learned ranker to weigh).
type SourceWeights struct {
	Covisit    float64 `yaml:"covisit"`
	Transition float64 `yaml:"transition"`
	Trending   float64 `yaml:"trending"`
	Popular    float64 `yaml:"popular"`
}

// SourceNames are the sources of a Config's Retriever, in merger order.
var SourceNames = [4]string{"covisit", "transition", "trending", "popular"}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Index = c.Index.WithDefaults()
	c.Recent = cmp.Or(c.Recent, 10)
	c.Decay = cmp.Or(c.Decay, 0.7)
	if c.NormA == 0 && c.NormB == 0 {
		c.NormB = -0.25
	}
	c.Limits.Covisit = cmp.Or(c.Limits.Covisit, 50)
	c.Limits.Transition = cmp.Or(c.Limits.Transition, 20)
	c.Limits.Trending = cmp.Or(c.Limits.Trending, 20)
	c.Limits.Popular = cmp.Or(c.Limits.Popular, 20)
	if c.Weights == (SourceWeights{}) {
		c.Weights = SourceWeights{Covisit: 1, Transition: 0.05, Trending: 0, Popular: 0.02}
	}
	return c
}

// Validate names the first field of c (after WithDefaults) out of range.
func (c Config) Validate() error {
	if err := c.Index.Validate(); err != nil {
		return fmt.Errorf("index.%w", err)
	}
	switch {
	case c.Recent <= 0 || c.Recent > c.Index.Window:
		return fmt.Errorf("recent: must be in [1, index.window=%d], got %d", c.Index.Window, c.Recent)
	case !(c.Decay > 0 && c.Decay <= 1):
		return fmt.Errorf("decay: must be in (0, 1], got %g", c.Decay)
	case c.NormA < -2 || c.NormA > 2 || c.NormB < -2 || c.NormB > 2:
		return fmt.Errorf("norm_a, norm_b: must be in [-2, 2], got %g and %g", c.NormA, c.NormB)
	}
	for i, l := range c.limits() {
		if l <= 0 || l > 1<<15 {
			return fmt.Errorf("limits.%s: must be in [1, 32768], got %d", SourceNames[i], l)
		}
	}
	for i, w := range c.weights() {
		if !(w >= 0) {
			return fmt.Errorf("weights.%s: must be >= 0, got %g", SourceNames[i], w)
		}
	}
	return nil
}

func (c Config) limits() [4]int {
	return [4]int{c.Limits.Covisit, c.Limits.Transition, c.Limits.Trending, c.Limits.Popular}
}

func (c Config) weights() [4]float64 {
	return [4]float64{c.Weights.Covisit, c.Weights.Transition, c.Weights.Trending, c.Weights.Popular}
}

// NewRetriever returns the Retriever cfg describes over x: all four
// sources blended, or, when only names one of SourceNames, that source's
// candidates in its own order (a source evaluated alone).
func NewRetriever(x *Index, cfg Config, only string) (*Retriever, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	norm := Normalisation{A: cfg.NormA, B: cfg.NormB}
	sources := []Source{
		&CovisitSource{Index: x, Recent: cfg.Recent, Decay: cfg.Decay, Norm: norm},
		&TransitionSource{Index: x, Norm: norm},
		&TrendingSource{Index: x},
		&PopularSource{Index: x},
	}
	limits := cfg.limits()
	all := make([]SourceLimit, len(sources))
	for i, s := range sources {
		all[i] = SourceLimit{Source: s, Limit: limits[i]}
	}
	weights := cfg.weights()
	picked, blend := all, weights[:]
	if only != "" {
		i := slices.Index(SourceNames[:], only)
		if i < 0 {
			return nil, fmt.Errorf("retrieval: no source %q (have %v)", only, SourceNames)
		}
		picked, blend = all[i:i+1], []float64{1}
	}
	merger, err := NewMerger(picked...)
	if err != nil {
		return nil, err
	}
	ranker, err := NewBlendRanker(blend...)
	if err != nil {
		return nil, err
	}
	return &Retriever{Merger: merger, Ranker: ranker}, nil
}
