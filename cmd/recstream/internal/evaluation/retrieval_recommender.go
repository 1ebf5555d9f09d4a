package evaluation

import (
	"context"
	"fmt"
	"slices"

	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/retrieval"
)

// RetrievalConfig configures Retrieval.
type RetrievalConfig struct {
	// Config is the recommender itself, exactly as the scorer serves it
	// (scorer.retrieval); its zero value is the frozen defaults.
	retrieval.Config
	// ExcludeSeen removes the items the user had an event on from the
	// candidates before ranking (the harness's --exclude-seen).
	ExcludeSeen bool
	// Only, when not empty, names the one source whose candidates are
	// recommended in its own order: the source evaluated alone (see also
	// Retrieval.Alone).
	Only string
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
	cfg.Config = cfg.Config.WithDefaults()
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
	retriever, err := retrieval.NewRetriever(r.index, r.cfg.Config, only)
	if err != nil {
		return err
	}
	r.retriever = *retriever
	r.name = "retrieval"
	if only != "" {
		r.name = "source:" + only
	}
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
