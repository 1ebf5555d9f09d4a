package evaluation

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/retrieval"
)

// RetrievalConfig configures Retrieval. The zero value of each field means
// its documented default. The defaults were chosen on the first half of
// MovieLens 100K in time (warmed up on its first quarter, scored on the
// second, seen items excluded), then frozen: `recstream eval` scores the
// second half, which the tuning never saw.
type RetrievalConfig struct {
	// Index configures the streaming item index (its zero value is its
	// defaults).
	Index retrieval.IndexConfig
	// Recent and Decay configure the co-visitation source (default 10 and
	// 0.7), Norm both item-to-item sources (default A 0, B -0.25: raw
	// weights, leaning to popular candidates).
	Recent int
	Decay  float64
	Norm   retrieval.Normalisation
	// Limits are the candidates each source contributes, in the order
	// covisit, transition, trending, popular. Default 200, 50, 50, 100.
	Limits [4]int
	// Weights are the blend ranker's weights, in the same order. Default
	// 1, 0.1, 0.01, 0.1: co-visits decide, the others order what they
	// leave (a cold user's list).
	Weights [4]float64
	// ExcludeSeen removes the items the user had an event on from the
	// candidates before ranking (the harness's --exclude-seen).
	ExcludeSeen bool
	// Only, when not empty, names the one source whose candidates are
	// recommended in its own order: the source evaluated alone (see also
	// Retrieval.Alone).
	Only string
}

// WithDefaults returns c with every zero field set to its default.
func (c RetrievalConfig) WithDefaults() RetrievalConfig {
	if c.Limits == [4]int{} {
		c.Limits = [4]int{200, 50, 50, 100}
	}
	if c.Weights == [4]float64{} {
		c.Weights = [4]float64{1, 0.1, 0.01, 0.1}
	}
	c.Recent = cmp.Or(c.Recent, 10)
	c.Decay = cmp.Or(c.Decay, 0.7)
	if c.Norm == (retrieval.Normalisation{}) {
		c.Norm = retrieval.Normalisation{B: -0.25}
	}
	return c
}

// Retrieval is the streaming two-stage recommender the scorer is built
// from (scorers/retrieval): an item index learned from every event,
// candidate sources merged per user, and a ranker. It is evaluated whole,
// and each source alone (RetrievalConfig.Only), so that a report shows
// where a miss comes from.
type Retrieval struct {
	name  string
	cfg   RetrievalConfig
	index *retrieval.Index
	// follower is set for a recommender of Alone: its index and windows
	// are another's, which learns.
	follower  bool
	retriever retrieval.Retriever
	only      retrieval.Source
	windows   []retrieval.Window
	weights   []float32 // by event type code
	seen      []map[int32]struct{}
	// asked and found count the Recommend calls and those whose candidates
	// held the item of the event scored (see CandidateRecall); lastCands
	// holds each user's candidates until that event is applied.
	asked, found int
	lastCands    map[int32][]int32
}

// NewRetrieval returns the recommender for a dataset's users and event
// types.
func NewRetrieval(ds *Dataset, cfg RetrievalConfig) (*Retrieval, error) {
	cfg = cfg.WithDefaults()
	idx, err := retrieval.NewIndex(cfg.Index)
	if err != nil {
		return nil, err
	}
	weights, err := models.TypeWeightVector(ds.Types, models.DefaultTypeWeights())
	if err != nil {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	r := &Retrieval{name: "retrieval", cfg: cfg, index: idx, windows: make([]retrieval.Window, len(ds.Users)),
		weights: weights[1:], lastCands: map[int32][]int32{}}
	if cfg.ExcludeSeen {
		r.seen = make([]map[int32]struct{}, len(ds.Users))
	}
	if err := r.build(cfg.Only); err != nil {
		return nil, err
	}
	return r, nil
}

// Alone returns a recommender that recommends the candidates of one of
// r's sources ("covisit", "transition", "trending", "popular") in that
// source's order. It reads r's index and windows, which r's Update keeps:
// evaluate it beside r, after it.
func (r *Retrieval) Alone(source string) (*Retrieval, error) {
	a := &Retrieval{cfg: r.cfg, index: r.index, windows: r.windows, weights: r.weights, seen: r.seen,
		lastCands: map[int32][]int32{}, follower: true}
	if err := a.build(source); err != nil {
		return nil, err
	}
	return a, nil
}

// build makes the sources, merger and ranker: all sources blended, or only
// the one named.
func (r *Retrieval) build(only string) error {
	cfg := r.cfg
	sources := []retrieval.Source{
		&retrieval.CovisitSource{Index: r.index, Recent: cfg.Recent, Decay: cfg.Decay, Norm: cfg.Norm},
		&retrieval.TransitionSource{Index: r.index, Norm: cfg.Norm},
		&retrieval.TrendingSource{Index: r.index},
		&retrieval.PopularSource{Index: r.index},
	}
	var limits []retrieval.SourceLimit
	for i, s := range sources {
		limits = append(limits, retrieval.SourceLimit{Source: s, Limit: cfg.Limits[i]})
	}
	weights := cfg.Weights[:]
	r.name = "retrieval"
	if only != "" {
		i := slices.IndexFunc(sources, func(s retrieval.Source) bool { return s.Name() == only })
		if i < 0 {
			return fmt.Errorf("retrieval: no source %q", only)
		}
		limits, weights = limits[i:i+1], []float64{1}
		r.name = "source:" + only
	}
	merger, err := retrieval.NewMerger(limits...)
	if err != nil {
		return err
	}
	ranker, err := retrieval.NewBlendRanker(weights...)
	if err != nil {
		return err
	}
	r.retriever = retrieval.Retriever{Merger: merger, Ranker: ranker}
	return nil
}

// Name implements Recommender.
func (r *Retrieval) Name() string { return r.name }

// Recommend implements Recommender.
func (r *Retrieval) Recommend(user int32, k int, dst []int32) []int32 {
	var exclude func(int32) bool
	if r.seen != nil {
		seen := r.seen[user]
		exclude = func(it int32) bool { _, ok := seen[it]; return ok }
	}
	dst = r.retriever.Recommend(&r.windows[user], k, exclude, dst)
	cands := r.lastCands[user][:0]
	for _, c := range r.retriever.Candidates() {
		cands = append(cands, c.Item)
	}
	r.lastCands[user] = cands
	return dst
}

// Update implements Recommender. The candidates of each user's last
// Recommend call are checked against the event's item first: the
// candidate recall.
func (r *Retrieval) Update(_ context.Context, events []Event) error {
	for _, e := range events {
		if e.Item == NoItem {
			continue
		}
		if cands, ok := r.lastCands[e.User]; ok {
			r.asked++
			if slices.Contains(cands, e.Item) {
				r.found++
			}
			delete(r.lastCands, e.User)
		}
		if r.follower {
			continue
		}
		r.index.Observe(&r.windows[e.User], retrieval.Visit{Item: e.Item, TsMs: e.TsMs, Weight: r.weights[e.Type]})
		if r.seen != nil {
			if r.seen[e.User] == nil {
				r.seen[e.User] = map[int32]struct{}{}
			}
			r.seen[e.User][e.Item] = struct{}{}
		}
	}
	return nil
}

// CandidateRecall implements CandidateRecaller: the share of scored events
// whose item was among the user's candidates at all (before ranking cut
// them to K): what the retrieval stage can reach. The harness asks for a
// list just before it applies the scored event, so each call is checked
// against exactly that event.
func (r *Retrieval) CandidateRecall() (recall float64, calls int) {
	if r.asked == 0 {
		return 0, 0
	}
	return float64(r.found) / float64(r.asked), r.asked
}
