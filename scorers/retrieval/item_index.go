package retrieval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// IndexConfig configures an Index. The zero value of each field means its
// documented default.
type IndexConfig struct {
	// MaxItems bounds the items indexed: a visit to an item index at or
	// above it is counted in Stats.Dropped and otherwise ignored. Default
	// 1<<20.
	MaxItems int `yaml:"max_items"`
	// Neighbours is the most co-visited items, and the most successors,
	// kept per item. Default 200 (on MovieLens 100K, 64 lost 10 % HR@10
	// against an unbounded count; 200 matched 1000).
	Neighbours int `yaml:"neighbours"`
	// Window is the most distinct items of a user's Window a visit is
	// counted as co-visited with. Default 10.
	Window int `yaml:"window"`
	// HalfLife is the half-life of co-visits, transitions and popularity:
	// what users did that long ago counts half. Default 30 days.
	HalfLife time.Duration `yaml:"half_life"`
	// TrendHalfLife is the half-life of the trending counts. Default 1 day.
	TrendHalfLife time.Duration `yaml:"trend_half_life"`
	// TopItems is how many of the most popular and of the most trending
	// items are kept ranked. Default 256.
	TopItems int `yaml:"top_items"`
}

// WithDefaults returns c with every zero field set to its default.
func (c IndexConfig) WithDefaults() IndexConfig {
	c.MaxItems = cmp.Or(c.MaxItems, 1<<20)
	c.Neighbours = cmp.Or(c.Neighbours, 200)
	c.Window = cmp.Or(c.Window, 10)
	c.HalfLife = cmp.Or(c.HalfLife, 30*24*time.Hour)
	c.TrendHalfLife = cmp.Or(c.TrendHalfLife, 24*time.Hour)
	c.TopItems = cmp.Or(c.TopItems, 256)
	return c
}

// Validate names the first field of c (after WithDefaults) out of range.
func (c IndexConfig) Validate() error {
	switch {
	case c.MaxItems <= 0 || c.MaxItems > math.MaxInt32:
		return fmt.Errorf("max_items: must be in [1, %d], got %d", math.MaxInt32, c.MaxItems)
	case c.Neighbours <= 0 || c.Neighbours > math.MaxUint16:
		return fmt.Errorf("neighbours: must be in [1, %d], got %d", math.MaxUint16, c.Neighbours)
	case c.Window <= 0 || c.Window > math.MaxUint16:
		return fmt.Errorf("window: must be in [1, %d], got %d", math.MaxUint16, c.Window)
	case c.HalfLife < time.Millisecond:
		return fmt.Errorf("half_life: must be >= 1ms, got %s", c.HalfLife)
	case c.TrendHalfLife < time.Millisecond:
		return fmt.Errorf("trend_half_life: must be >= 1ms, got %s", c.TrendHalfLife)
	case c.TopItems <= 0 || c.TopItems > math.MaxUint16:
		return fmt.Errorf("top_items: must be in [1, %d], got %d", math.MaxUint16, c.TopItems)
	}
	return nil
}

// Edge is a related item and the weight of the relation.
type Edge struct {
	Item   int32
	Weight float32
}

// itemStats is what the index knows of one item.
type itemStats struct {
	// trend is the item's decayed visit weight with the trend half-life
	// (the long one's is Index.counts, dense: the sources read it for every
	// candidate).
	trend float64
	// covisits are the items visited near it by the same users, both ways;
	// successors the items visited right after it. Each holds at most
	// Neighbours edges, in no order.
	covisits, successors []Edge
}

// Index is a streaming item-to-item index: co-visitation (items the same
// users had within Window of each other), transitions (item A, then item
// B), and decayed popularity and trend, updated by every visit. It is
// deterministic: the same visits in the same order give the same index,
// byte for byte (MarshalBinary), whatever the batching.
//
// Memory is bounded: at most MaxItems items, Neighbours edges per item and
// relation, and old co-visits decay away (edges whose weight decayed below
// a millionth of a visit are dropped at the next rescale). Neighbour lists
// are kept by the Space-Saving rule (Metwally et al., 2005): a new
// neighbour of a full list takes the place of the weakest and inherits its
// weight, so the heaviest relations are kept with bounded error.
//
// Decay is lazy: weights are stored scaled by 2^(age/half-life) relative
// to an anchor time, so a visit adds one scaled number instead of decaying
// every edge; when the scale grows large the index is rescaled once. Time
// is the largest event time seen: an event older than that counts as now.
//
// An Index is not safe for concurrent use.
type Index struct {
	cfg   IndexConfig
	items []itemStats
	// counts are the items' decayed visit weights (long half-life), by
	// item, beside items for the cache's sake.
	counts []float64
	// nowMs is the largest visit time seen; anchorMs the time at which the
	// stored weights are unscaled; gain and trendGain are the scales at
	// nowMs, 2^((nowMs-anchorMs)/half-life).
	nowMs, anchorMs int64
	gain, trendGain float64
	popular, trendy topList
	dropped, visits int64
	rescales        int64
}

// rescaleAbove is the exponent of the scale past which the index rescales:
// 2^30 keeps float32 edge weights far from overflow and their increments
// above float32's resolution of the largest weights.
const rescaleAbove = 30

// pruneBelow is the decayed weight under which an edge is dropped at a
// rescale: a millionth of one view.
const pruneBelow = 1e-6

// NewIndex returns an empty index; cfg must pass Validate after
// WithDefaults.
func NewIndex(cfg IndexConfig) (*Index, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("item index: %w", err)
	}
	return &Index{cfg: cfg, gain: 1, trendGain: 1,
		popular: topList{size: cfg.TopItems}, trendy: topList{size: cfg.TopItems}}, nil
}

// Config returns the index's configuration, with defaults applied.
func (x *Index) Config() IndexConfig { return x.cfg }

// Observe learns v, a visit of the user whose window is w, and then makes
// v the newest visit of w. v is counted as co-visited with each item of w
// (weight sqrt(v.Weight * that visit's weight), divided by how many items
// back it is), and as a transition from w's newest item. A visit to the
// item the user visited last counts for the item's popularity only.
func (x *Index) Observe(w *Window, v Visit) {
	if v.Item < 0 || int(v.Item) >= x.cfg.MaxItems || !(v.Weight > 0) {
		x.dropped++
		return
	}
	x.visits++
	x.advance(v.TsMs)
	if int(v.Item) >= len(x.items) {
		x.items = slices.Grow(x.items, int(v.Item)+1-len(x.items))[:int(v.Item)+1]
		x.counts = slices.Grow(x.counts, int(v.Item)+1-len(x.counts))[:int(v.Item)+1]
	}
	it := &x.items[v.Item]
	x.counts[v.Item] += float64(v.Weight) * x.gain
	it.trend += float64(v.Weight) * x.trendGain
	x.popular.offer(v.Item, x.counts[v.Item])
	x.trendy.offer(v.Item, it.trend)
	if last, ok := w.Last(); !ok || last.Item != v.Item {
		n := len(w.Visits)
		for back := 1; back <= n; back++ {
			p := w.Visits[n-back]
			if p.Item == v.Item || int(p.Item) >= len(x.items) {
				continue
			}
			inc := float32(math.Sqrt(float64(v.Weight)*float64(p.Weight)) / float64(back) * x.gain)
			x.link(&x.items[p.Item].covisits, v.Item, inc)
			x.link(&x.items[v.Item].covisits, p.Item, inc)
			if back == 1 {
				x.link(&x.items[p.Item].successors, v.Item, inc)
			}
		}
	}
	w.push(v, x.cfg.Window)
}

// link adds inc to the edge to item in list, by the Space-Saving rule when
// the list is full.
func (x *Index) link(list *[]Edge, item int32, inc float32) {
	l := *list
	for i := range l {
		if l[i].Item == item {
			l[i].Weight += inc
			return
		}
	}
	if len(l) < x.cfg.Neighbours {
		*list = append(l, Edge{Item: item, Weight: inc})
		return
	}
	weakest := 0
	for i := 1; i < len(l); i++ {
		if l[i].Weight < l[weakest].Weight || (l[i].Weight == l[weakest].Weight && l[i].Item > l[weakest].Item) {
			weakest = i
		}
	}
	l[weakest] = Edge{Item: item, Weight: l[weakest].Weight + inc}
}

// advance moves the clock to tsMs if it is later, rescaling when the scale
// grows past 2^rescaleAbove.
func (x *Index) advance(tsMs int64) {
	if tsMs <= x.nowMs {
		return
	}
	if x.nowMs == 0 && x.anchorMs == 0 {
		x.anchorMs = tsMs
	}
	x.nowMs = tsMs
	e, et := x.exponents()
	if e > rescaleAbove || et > rescaleAbove {
		x.rescale()
		e, et = 0, 0
	}
	x.gain, x.trendGain = math.Exp2(e), math.Exp2(et)
}

// exponents returns the long and the trend scale exponents at nowMs.
func (x *Index) exponents() (float64, float64) {
	age := float64(x.nowMs - x.anchorMs)
	return age / float64(x.cfg.HalfLife.Milliseconds()), age / float64(x.cfg.TrendHalfLife.Milliseconds())
}

// rescale moves the anchor to nowMs: every stored weight is divided by its
// scale, and edges that decayed below pruneBelow are dropped.
func (x *Index) rescale() {
	e, et := x.exponents()
	f, ft := math.Exp2(-e), math.Exp2(-et)
	for i := range x.items {
		it := &x.items[i]
		x.counts[i] *= f
		it.trend *= ft
		it.covisits = scaleEdges(it.covisits, f)
		it.successors = scaleEdges(it.successors, f)
	}
	x.popular.scale(f)
	x.trendy.scale(ft)
	x.anchorMs = x.nowMs
	x.rescales++
}

// scaleEdges multiplies every weight of l by f and drops the ones left
// below pruneBelow, keeping the others' order.
func scaleEdges(l []Edge, f float64) []Edge {
	out := l[:0]
	for _, e := range l {
		if w := float32(float64(e.Weight) * f); w >= pruneBelow {
			out = append(out, Edge{Item: e.Item, Weight: w})
		}
	}
	clear(l[len(out):])
	return out
}

// Count returns item's decayed visit weight now (0 for an unknown item).
func (x *Index) Count(item int32) float64 {
	if item < 0 || int(item) >= len(x.counts) {
		return 0
	}
	return x.counts[item] / x.gain
}

// Trend returns item's decayed visit weight with the trend half-life.
func (x *Index) Trend(item int32) float64 {
	if item < 0 || int(item) >= len(x.items) {
		return 0
	}
	return x.items[item].trend / x.trendGain
}

// Covisits appends item's co-visited items to dst, their weights decayed
// to now, heaviest first (ties by item index), and returns dst: for
// inspection and tests; the sources read the lists in place.
func (x *Index) Covisits(item int32, dst []Edge) []Edge {
	if item < 0 || int(item) >= len(x.items) {
		return dst
	}
	start := len(dst)
	for _, e := range x.items[item].covisits {
		dst = append(dst, Edge{Item: e.Item, Weight: float32(float64(e.Weight) / x.gain)})
	}
	slices.SortFunc(dst[start:], heavierFirst)
	return dst
}

// heavierFirst orders edges by weight descending, then item ascending.
// Weights are never NaN, so plain comparisons do (cmp.Compare's NaN
// handling cost a tenth of the retrieval's time).
func heavierFirst(a, b Edge) int {
	switch {
	case a.Weight > b.Weight:
		return -1
	case a.Weight < b.Weight:
		return 1
	case a.Item < b.Item:
		return -1
	case a.Item > b.Item:
		return 1
	}
	return 0
}

// Stats describes an index.
type Stats struct {
	// Items is the number of item slots (the largest item index seen + 1);
	// Edges the co-visit and successor edges held.
	Items, Edges int
	// Visits were learned; Dropped were not (item out of range, weight
	// not positive).
	Visits, Dropped int64
	// Rescales counts the anchor moves.
	Rescales int64
	// Bytes is the memory the index holds, in its slices' capacities.
	Bytes int64
}

// Dropped counts the visits not learned (item out of range, weight not
// positive); unlike Stats it costs nothing.
func (x *Index) Dropped() int64 { return x.dropped }

// Stats returns the index's size and counters.
func (x *Index) Stats() Stats {
	s := Stats{Items: len(x.items), Visits: x.visits, Dropped: x.dropped, Rescales: x.rescales}
	const edgeBytes, statsBytes = 8, 8 + 2*24
	s.Bytes = int64(cap(x.items))*statsBytes + int64(cap(x.counts))*8
	for i := range x.items {
		it := &x.items[i]
		s.Edges += len(it.covisits) + len(it.successors)
		s.Bytes += int64(cap(it.covisits)+cap(it.successors)) * edgeBytes
	}
	s.Bytes += int64(cap(x.popular.items)+cap(x.trendy.items)) * 16
	return s
}
