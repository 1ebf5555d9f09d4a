package retrieval

import "slices"

// topList keeps the size items of largest stored value, largest first
// (ties by item index). It is exact for values that only grow between
// rescales, as the index's counts do: an item outside the list enters it
// at the visit that lifts it above the smallest kept.
type topList struct {
	size  int
	items []scoredItem
}

type scoredItem struct {
	item  int32
	value float64
}

func (a scoredItem) before(b scoredItem) bool {
	return a.value > b.value || (a.value == b.value && a.item < b.item)
}

// offer records that item's value is now value.
func (t *topList) offer(item int32, value float64) {
	s := scoredItem{item, value}
	if i := slices.IndexFunc(t.items, func(c scoredItem) bool { return c.item == item }); i >= 0 {
		t.items = slices.Delete(t.items, i, i+1)
	} else if len(t.items) == t.size && !s.before(t.items[len(t.items)-1]) {
		return
	}
	i, _ := slices.BinarySearchFunc(t.items, s, func(a, b scoredItem) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	t.items = slices.Insert(t.items, i, s)
	if len(t.items) > t.size {
		t.items = t.items[:t.size]
	}
}

// scale multiplies every kept value by f.
func (t *topList) scale(f float64) {
	for i := range t.items {
		t.items[i].value *= f
	}
}

// appendTop appends up to n items that exclude does not reject (exclude
// may be nil), their values divided by gain.
func (t *topList) appendTop(n int, gain float64, exclude func(int32) bool, dst []Edge) []Edge {
	for _, s := range t.items {
		if n == 0 {
			break
		}
		if exclude == nil || !exclude(s.item) {
			dst = append(dst, Edge{Item: s.item, Weight: float32(s.value / gain)})
			n--
		}
	}
	return dst
}
