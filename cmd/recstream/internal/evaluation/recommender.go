package evaluation

import (
	"context"
	"slices"
)

// Recommender is what the harness evaluates: it recommends items to a user
// from what it has been shown so far, and learns from each event after the
// harness has scored it.
type Recommender interface {
	// Name identifies the recommender in reports.
	Name() string
	// Recommend appends to dst up to k item indices (Dataset.Items), best
	// first, for user as of the events applied so far, and returns dst.
	Recommend(user int32, k int, dst []int32) []int32
	// Update applies events, in time order. In the evaluated part of the
	// replay each user has at most one event per call; before it (the
	// warm-up) a call may hold several events of one user.
	Update(ctx context.Context, events []Event) error
}

// CandidateRecaller is a two-stage recommender that can say how often the
// item of a scored event was among its candidates before ranking.
type CandidateRecaller interface {
	CandidateRecall() (recall float64, calls int)
}

// scored is an item and its score, for top-k selection.
type scored struct {
	item  int32
	score float64
}

// better orders by score descending, then item index ascending, so that
// every recommender's ties break the same, deterministic way.
func better(a, b scored) bool {
	return a.score > b.score || (a.score == b.score && a.item < b.item)
}

// topK keeps the best k of what it is offered, sorted.
type topK struct {
	k     int
	items []scored
}

func (t *topK) reset(k int) { t.k, t.items = k, t.items[:0] }

// offer considers item with score.
func (t *topK) offer(item int32, score float64) {
	s := scored{item, score}
	n := len(t.items)
	if n == t.k {
		if t.k == 0 || !better(s, t.items[n-1]) {
			return
		}
		t.items = t.items[:n-1]
		n--
	}
	// Items better than s compare -1, the rest 0: the search returns the
	// insertion point.
	i, _ := slices.BinarySearchFunc(t.items, s, func(a, b scored) int {
		if better(a, b) {
			return -1
		}
		return 0
	})
	t.items = slices.Insert(t.items, i, s)
}

// appendItems appends the kept items, best first, to dst.
func (t *topK) appendItems(dst []int32) []int32 {
	for _, s := range t.items {
		dst = append(dst, s.item)
	}
	return dst
}

// appendVotedThenPopular is how the neighbourhood baselines answer: the k
// best of the voted items by score (each score is reset to 0 for the next
// call), then, while the list is short of k, the most popular items (up to
// depth asked of pop) not already in it. It appends to dst and returns it.
func appendVotedThenPopular(dst []int32, k int, top *topK, voted []int32, score []float64, pop *Popularity, depth int) []int32 {
	top.reset(k)
	for _, it := range voted {
		top.offer(it, score[it])
		score[it] = 0
	}
	start := len(dst)
	dst = top.appendItems(dst)
	if len(dst)-start >= k {
		return dst
	}
	for _, it := range pop.Recommend(0, depth, nil) {
		if len(dst)-start == k {
			break
		}
		if !slices.Contains(dst[start:], it) {
			dst = append(dst, it)
		}
	}
	return dst
}
