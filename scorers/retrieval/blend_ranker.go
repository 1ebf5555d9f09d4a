package retrieval

import (
	"cmp"
	"fmt"
)

// BlendRanker orders candidates by a weighted sum of their sources'
// scores, each divided by that source's best score for the user (so that
// sources on different scales blend). It is the ranker without a learned
// model: the fallback and the baseline a learned ranker must beat.
type BlendRanker struct {
	weights []float64
	order   []ranked
	sorted  []Candidate
}

// ranked is a candidate's position and blended score while ranking.
type ranked struct {
	i    int
	key  float64
	item int32
}

// NewBlendRanker returns a ranker with one weight per source of the
// merger, in its order.
func NewBlendRanker(weights ...float64) (*BlendRanker, error) {
	if len(weights) == 0 || len(weights) > MaxSources {
		return nil, fmt.Errorf("blend weights: want 1 to %d, got %d", MaxSources, len(weights))
	}
	for i, w := range weights {
		if !(w >= 0) {
			return nil, fmt.Errorf("blend weights[%d]: must be >= 0, got %g", i, w)
		}
	}
	return &BlendRanker{weights: weights}, nil
}

// Rank implements Ranker: the k best first, ties by item index, each
// candidate's Final set to its blended score.
func (r *BlendRanker) Rank(cands []Candidate, k int) {
	var best [MaxSources]float32
	for i := range cands {
		for s := range r.weights {
			best[s] = max(best[s], cands[i].Score[s])
		}
	}
	r.order = r.order[:0]
	for i := range cands {
		key := 0.0
		for s, w := range r.weights {
			if best[s] > 0 {
				key += w * float64(cands[i].Score[s]/best[s])
			}
		}
		cands[i].Final = float32(key)
		r.order = append(r.order, ranked{i: i, key: key, item: cands[i].Item})
	}
	selectTop(r.order, k, func(a, b ranked) int {
		switch {
		case a.key > b.key:
			return -1
		case a.key < b.key:
			return 1
		}
		return cmp.Compare(a.item, b.item)
	})
	r.sorted = r.sorted[:0]
	for _, o := range r.order {
		r.sorted = append(r.sorted, cands[o.i])
	}
	copy(cands, r.sorted)
}
