package evaluation

import "context"

// Popularity recommends the items with the most events so far, to every
// user alike: the baseline any personalised model must beat.
//
// Counts only grow, so the best Depth items are kept sorted as events come
// (an item outside the list can only enter by passing its last entry), and
// a recommendation costs nothing to compute.
type Popularity struct {
	depth  int
	counts []int64
	pos    []int32 // item -> 1 + its place in top; 0 when not there
	top    []int32 // best first
	name   string
}

// NewPopularity returns a global popularity baseline over numItems items
// that can answer requests for up to depth items.
func NewPopularity(numItems, depth int) *Popularity {
	return &Popularity{depth: depth, counts: make([]int64, numItems), pos: make([]int32, numItems), name: "popularity"}
}

// Name implements Recommender.
func (p *Popularity) Name() string { return p.name }

// Recommend implements Recommender; user is ignored.
func (p *Popularity) Recommend(_ int32, k int, dst []int32) []int32 {
	return append(dst, p.top[:min(k, len(p.top))]...)
}

// Update implements Recommender.
func (p *Popularity) Update(_ context.Context, events []Event) error {
	for _, e := range events {
		if e.Item != NoItem {
			p.add(e.Item)
		}
	}
	return nil
}

// ahead reports whether item a ranks before item b: more events, then the
// smaller index.
func (p *Popularity) ahead(a, b int32) bool {
	return p.counts[a] > p.counts[b] || (p.counts[a] == p.counts[b] && a < b)
}

// add counts one event of item and restores the order of top.
func (p *Popularity) add(item int32) {
	p.counts[item]++
	i := int(p.pos[item]) - 1
	switch {
	case i >= 0:
	case len(p.top) < p.depth:
		p.top = append(p.top, item)
		i = len(p.top) - 1
	case p.depth > 0 && p.ahead(item, p.top[len(p.top)-1]):
		i = len(p.top) - 1
		p.pos[p.top[i]] = 0
		p.top[i] = item
	default:
		return
	}
	for i > 0 && p.ahead(item, p.top[i-1]) {
		p.top[i] = p.top[i-1]
		p.pos[p.top[i]] = int32(i + 1)
		i--
	}
	p.top[i] = item
	p.pos[item] = int32(i + 1)
}
