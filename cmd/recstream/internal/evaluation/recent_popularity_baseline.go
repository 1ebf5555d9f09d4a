package evaluation

import "context"

// DefaultRecentWindow is the window of RecentPopularity when none is given.
const DefaultRecentWindow = 10000

// RecentPopularity recommends the items with the most events among the
// last Window events with an item: popularity that follows trends. It
// counts events, not time, so the same window suits data sets of any pace.
type RecentPopularity struct {
	window  int
	depth   int
	ring    []int32 // the window's items, oldest at head once full
	head    int
	counts  []int32
	active  []int32 // items with counts > 0 (may hold stale entries)
	inList  []bool
	top     topK
	topList []int32
	dirty   bool
}

// NewRecentPopularity returns a sliding-window popularity baseline over
// numItems items that can answer requests for up to depth items; window <=
// 0 means DefaultRecentWindow.
func NewRecentPopularity(numItems, depth, window int) *RecentPopularity {
	if window <= 0 {
		window = DefaultRecentWindow
	}
	return &RecentPopularity{
		window: window, depth: depth, ring: make([]int32, 0, window),
		counts: make([]int32, numItems), inList: make([]bool, numItems),
	}
}

// Name implements Recommender.
func (r *RecentPopularity) Name() string { return "recent-popularity" }

// Recommend implements Recommender; user is ignored. The ranking is
// recomputed once after each Update, over the items in the window only.
func (r *RecentPopularity) Recommend(_ int32, k int, dst []int32) []int32 {
	if r.dirty {
		r.top.reset(r.depth)
		live := r.active[:0]
		for _, it := range r.active {
			if r.counts[it] == 0 {
				r.inList[it] = false
				continue
			}
			live = append(live, it)
			r.top.offer(it, float64(r.counts[it]))
		}
		r.active = live
		r.topList = r.top.appendItems(r.topList[:0])
		r.dirty = false
	}
	return append(dst, r.topList[:min(k, len(r.topList))]...)
}

// Update implements Recommender.
func (r *RecentPopularity) Update(_ context.Context, events []Event) error {
	for _, e := range events {
		if e.Item == NoItem {
			continue
		}
		if len(r.ring) < r.window {
			r.ring = append(r.ring, e.Item)
		} else {
			r.counts[r.ring[r.head]]--
			r.ring[r.head] = e.Item
			r.head = (r.head + 1) % r.window
		}
		r.counts[e.Item]++
		if !r.inList[e.Item] {
			r.inList[e.Item] = true
			r.active = append(r.active, e.Item)
		}
		r.dirty = true
	}
	return nil
}
