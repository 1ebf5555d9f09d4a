package retrieval

import (
	"cmp"
	"fmt"
	"slices"
)

// BlendRanker orders candidates by a weighted sum of their sources'
// scores, each divided by that source's best score for the user (so that
// sources on different scales blend). It is the ranker without a learned
// model: the fallback and the baseline a learned ranker must beat.
type BlendRanker struct {
	weights []float64
	keys    []float64
	order   []int
	sorted  []Candidate
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

// Rank sorts cands best first, ties by item index, and sets their Final
// score.
func (r *BlendRanker) Rank(cands []Candidate) {
	var best [MaxSources]float32
	for i := range cands {
		for s := range r.weights {
			best[s] = max(best[s], cands[i].Score[s])
		}
	}
	r.keys = r.keys[:0]
	r.order = r.order[:0]
	for i := range cands {
		k := 0.0
		for s, w := range r.weights {
			if best[s] > 0 {
				k += w * float64(cands[i].Score[s]/best[s])
			}
		}
		cands[i].Final = float32(k)
		r.keys = append(r.keys, k)
		r.order = append(r.order, i)
	}
	slices.SortFunc(r.order, func(a, b int) int {
		if c := cmp.Compare(r.keys[b], r.keys[a]); c != 0 {
			return c
		}
		return cmp.Compare(cands[a].Item, cands[b].Item)
	})
	r.sorted = r.sorted[:0]
	for _, i := range r.order {
		r.sorted = append(r.sorted, cands[i])
	}
	copy(cands, r.sorted)
}
