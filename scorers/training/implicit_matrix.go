package training

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
)

// implicitMatrix is the user x item matrix of implicit feedback that BPR and
// ALS learn from: one entry per (user, item) pair that has events, holding
// the summed type weights of those events. It is stored twice, by user and
// by item (compressed rows), because ALS solves for both sides in turn.
type implicitMatrix struct {
	// items are the item ids, most frequent first (ties by id), the order
	// TrainItem2Vec gives too; counts their numbers of events.
	items  []string
	counts []int64
	// users is the number of users (rows); ids are not kept.
	users int
	// userPtr[u]..userPtr[u+1] index userItems and userWeights: user u's
	// items, ascending, and the weight of each.
	userPtr     []int32
	userItems   []int32
	userWeights []float32
	// itemPtr[i]..itemPtr[i+1] index itemUsers and itemWeights likewise.
	itemPtr     []int32
	itemUsers   []int32
	itemWeights []float32
	// fromMs and toMs bound the event times of the entries.
	fromMs, toMs int64
}

// nnz is the number of (user, item) entries.
func (m *implicitMatrix) nnz() int { return len(m.userItems) }

// resolveTypeWeights returns the weight of each type code of types: the
// weights of DefaultTypeWeights overridden by overrides. A weight of 0
// makes the type's events count for nothing.
func resolveTypeWeights(types []string, overrides map[string]float32) ([]float32, error) {
	if types == nil {
		types = schemas.DefaultEventTypes()
	}
	byName := models.DefaultTypeWeights()
	for name, w := range overrides {
		byName[name] = w
	}
	out := make([]float32, len(types))
	for code, name := range types {
		w, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("type_weights: no weight for event type %q", name)
		}
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) || w < 0 {
			return nil, fmt.Errorf("type_weights: weight of %q must be >= 0, got %g", name, w)
		}
		out[code] = w
	}
	return out, nil
}

// itemVocabulary keeps the items counted at least minCount times and
// numbers them deterministically, by count (highest first) then id. It
// returns them with their counts and the index of each.
func itemVocabulary(counts map[string]int64, minCount int) (items []string, itemCounts []int64, index map[string]int32) {
	for id, c := range counts {
		if c >= int64(minCount) {
			items = append(items, id)
		}
	}
	slices.SortFunc(items, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	index = make(map[string]int32, len(items))
	itemCounts = make([]int64, len(items))
	for i, id := range items {
		index[id] = int32(i)
		itemCounts[i] = counts[id]
	}
	return items, itemCounts, index
}

// buildImplicitMatrix turns events into the matrix: an event counts when it
// has an item and its type code has a weight > 0; items with fewer than
// minCount such events are dropped. It is deterministic: users are numbered
// by id order, items by count then id.
func buildImplicitMatrix(events []Interaction, weights []float32, minCount int) (*implicitMatrix, error) {
	counts := map[string]int64{}
	userIDs := map[string]int32{}
	for i := range events {
		e := &events[i]
		if e.Item == "" || int(e.Type) >= len(weights) || weights[e.Type] <= 0 {
			continue
		}
		counts[e.Item]++
		userIDs[e.User] = 0
	}
	m := &implicitMatrix{fromMs: math.MaxInt64, toMs: math.MinInt64}
	var itemIndex map[string]int32
	m.items, m.counts, itemIndex = itemVocabulary(counts, minCount)
	if len(m.items) == 0 {
		return nil, ErrNoTrainingData
	}
	users := make([]string, 0, len(userIDs))
	for id := range userIDs {
		users = append(users, id)
	}
	slices.Sort(users)
	for i, id := range users {
		userIDs[id] = int32(i)
	}

	type entry struct {
		user, item int32
		w          float32
	}
	entries := make([]entry, 0, len(events))
	for i := range events {
		e := &events[i]
		if e.Item == "" || int(e.Type) >= len(weights) || weights[e.Type] <= 0 {
			continue
		}
		item, ok := itemIndex[e.Item]
		if !ok {
			continue
		}
		m.fromMs = min(m.fromMs, e.TsMs)
		m.toMs = max(m.toMs, e.TsMs)
		entries = append(entries, entry{userIDs[e.User], item, weights[e.Type]})
	}
	// Stable, so that equal pairs are summed in input order: the float sums
	// do not depend on the sort algorithm.
	slices.SortStableFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(a.user, b.user); c != 0 {
			return c
		}
		return cmp.Compare(a.item, b.item)
	})
	merged := entries[:0]
	for _, e := range entries {
		if n := len(merged); n > 0 && merged[n-1].user == e.user && merged[n-1].item == e.item {
			merged[n-1].w = float32(merged[n-1].w + e.w)
			continue
		}
		merged = append(merged, e)
	}
	// Users whose items were all dropped by minCount have no entries;
	// renumber the rest densely.
	m.userPtr = []int32{0}
	m.userItems = make([]int32, len(merged))
	m.userWeights = make([]float32, len(merged))
	rowUser := make([]int32, len(merged))
	for k, e := range merged {
		if k > 0 && e.user != merged[k-1].user {
			m.userPtr = append(m.userPtr, int32(k))
		}
		m.userItems[k], m.userWeights[k] = e.item, e.w
		rowUser[k] = int32(len(m.userPtr) - 1)
	}
	m.userPtr = append(m.userPtr, int32(len(merged)))
	m.users = len(m.userPtr) - 1

	// Transpose: counting sort by item keeps users ascending within an item.
	n := len(m.items)
	m.itemPtr = make([]int32, n+1)
	for _, it := range m.userItems {
		m.itemPtr[it+1]++
	}
	for i := range n {
		m.itemPtr[i+1] += m.itemPtr[i]
	}
	m.itemUsers = make([]int32, len(merged))
	m.itemWeights = make([]float32, len(merged))
	next := slices.Clone(m.itemPtr[:n])
	for k, it := range m.userItems {
		p := next[it]
		next[it]++
		m.itemUsers[p], m.itemWeights[p] = rowUser[k], m.userWeights[k]
	}
	return m, nil
}

// scaleToMeanNorm multiplies every row by one factor so that the rows'
// mean L2 norm is 1. The tower's scores are state · embedding plus a
// popularity prior of fixed size, so the embeddings of every method are
// brought to the scale of item2vec's unit rows; one common factor keeps the
// rows' relative norms, which in a factorisation carry popularity.
func scaleToMeanNorm(rows [][]float32) {
	var sum float64
	for _, r := range rows {
		var ss float64
		for _, v := range r {
			ss += float64(float64(v) * float64(v))
		}
		sum += math.Sqrt(ss)
	}
	if sum == 0 {
		return
	}
	f := float64(len(rows)) / sum
	for _, r := range rows {
		for j, v := range r {
			r[j] = float32(float64(v) * f)
		}
	}
}
