package retrieval

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// listSource proposes a fixed list, for merger tests.
type listSource struct {
	name  string
	items []Edge
	asks  []int
}

func (s *listSource) Name() string { return s.name }
func (s *listSource) Propose(_ *Window, limit int, exclude func(int32) bool, dst []Edge) []Edge {
	s.asks = append(s.asks, limit)
	for _, e := range s.items {
		if len(dst) == limit {
			break
		}
		if exclude == nil || !exclude(e.Item) {
			dst = append(dst, e)
		}
	}
	return dst
}

func edges(items ...int32) []Edge {
	var out []Edge
	for i, it := range items {
		out = append(out, Edge{Item: it, Weight: float32(len(items) - i)})
	}
	return out
}

func TestMergerProvenanceLimitsAndExclusion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a, b     []int32
		limitA   int
		exclude  []int32
		want     []int32
		wantRank map[int32][2]uint16 // item -> rank in a, in b
		asksA    []int
	}{
		{
			name: "merged once each, in order of first proposal, with both ranks",
			a:    []int32{5, 6, 7}, b: []int32{7, 8}, limitA: 3,
			want:     []int32{5, 6, 7, 8},
			wantRank: map[int32][2]uint16{5: {1, 0}, 7: {3, 1}, 8: {0, 2}},
			asksA:    []int{3},
		},
		{
			name: "a source's limit holds",
			a:    []int32{5, 6, 7}, b: []int32{9}, limitA: 2,
			want: []int32{5, 6, 9},
		},
		{
			name: "excluded items are removed before ranking, by the sources, which fill their limit",
			a:    []int32{5, 6, 7, 8, 9, 10}, b: []int32{6, 11}, limitA: 2, exclude: []int32{5, 6},
			want:     []int32{7, 8, 11},
			wantRank: map[int32][2]uint16{7: {1, 0}, 8: {2, 0}, 11: {0, 1}},
			asksA:    []int{2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &listSource{name: "a", items: edges(tc.a...)}
			b := &listSource{name: "b", items: edges(tc.b...)}
			m, err := NewMerger(SourceLimit{a, tc.limitA}, SourceLimit{b, 10})
			if err != nil {
				t.Fatal(err)
			}
			var exclude func(int32) bool
			if tc.exclude != nil {
				exclude = func(it int32) bool { return slices.Contains(tc.exclude, it) }
			}
			for round := range 2 { // the second call must not see the first's state
				got := m.Merge(&Window{}, exclude, nil)
				var items []int32
				for _, c := range got {
					items = append(items, c.Item)
					if r, ok := tc.wantRank[c.Item]; ok && (c.Rank[0] != r[0] || c.Rank[1] != r[1]) {
						t.Errorf("round %d: item %d ranks %v, want %v", round, c.Item, c.Rank[:2], r)
					}
					if c.From(0) != (c.Rank[0] > 0) || (c.Rank[0] > 0) != (c.Score[0] > 0) {
						t.Errorf("round %d: item %d: provenance and score disagree: %+v", round, c.Item, c)
					}
				}
				if !slices.Equal(items, tc.want) {
					t.Fatalf("round %d: candidates %v, want %v", round, items, tc.want)
				}
			}
			if tc.asksA != nil && !slices.Equal(a.asks[:len(tc.asksA)], tc.asksA) {
				t.Errorf("source a was asked for %v, want %v first", a.asks, tc.asksA)
			}
		})
	}
}

func TestBlendRanker(t *testing.T) {
	// Source 0 scores on a scale of 100, source 1 of 1: the blend divides
	// each by its best, so equal weights treat them alike.
	cands := []Candidate{
		{Item: 1, Score: [MaxSources]float32{100, 0}},
		{Item: 2, Score: [MaxSources]float32{50, 1}},
		{Item: 3, Score: [MaxSources]float32{0, 0.9}},
		{Item: 0, Score: [MaxSources]float32{0, 0.9}},
	}
	for _, tc := range []struct {
		weights []float64
		want    []int32
	}{
		{[]float64{1, 1}, []int32{2, 1, 0, 3}}, // 1.5, 1, 0.9, 0.9 (ties by item)
		{[]float64{1, 0}, []int32{1, 2, 0, 3}},
		{[]float64{0, 1}, []int32{2, 0, 3, 1}},
	} {
		r, err := NewBlendRanker(tc.weights...)
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k <= len(cands); k++ {
			c := slices.Clone(cands)
			r.Rank(c, k)
			var got []int32
			for _, x := range c {
				got = append(got, x.Item)
			}
			if !slices.Equal(got[:k], tc.want[:k]) {
				t.Errorf("weights %v, top %d: order %v, want %v first", tc.weights, k, got, tc.want[:k])
			}
			for i := 1; i < k; i++ {
				if c[i].Final > c[i-1].Final {
					t.Errorf("weights %v: Final scores not best first: %v then %v", tc.weights, c[i-1].Final, c[i].Final)
				}
			}
		}
	}
	if _, err := NewBlendRanker(-1); err == nil {
		t.Error("a negative weight was accepted")
	}
}

// TestSelectTop checks the partial selection against a full sort, on
// lists with many ties (broken by the item index).
func TestSelectTop(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := r.IntN(300)
		es := make([]Edge, n)
		for i := range es {
			es[i] = Edge{Item: int32(i), Weight: float32(r.IntN(8))}
		}
		r.Shuffle(n, func(i, j int) { es[i], es[j] = es[j], es[i] })
		want := slices.Clone(es)
		slices.SortFunc(want, heavierFirst)
		k := r.IntN(n + 5)
		got := slices.Clone(es)
		selectTop(got, k, heavierFirst)
		if m := min(k, n); !slices.Equal(got[:m], want[:m]) {
			t.Fatalf("trial %d: top %d of %d: %v, want %v", trial, k, n, got[:m], want[:m])
		}
		slices.SortFunc(got, heavierFirst)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: selectTop lost or duplicated elements", trial)
		}
	}
}

// TestAccumulatorAppendBest checks the bounded heap against a full sort,
// with ties and exclusion.
func TestAccumulatorAppendBest(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a accumulator
	for trial := range 300 {
		n := r.IntN(400)
		var all []Edge
		for it := range int32(n) {
			s := float64(1 + r.IntN(6))
			a.add(it, s)
			if it%7 != 3 {
				all = append(all, Edge{Item: it, Weight: float32(s)})
			}
		}
		slices.SortFunc(all, heavierFirst)
		limit := 1 + r.IntN(60)
		got := a.appendBest(limit, func(it int32) bool { return it%7 == 3 }, nil)
		if want := all[:min(limit, len(all))]; !slices.Equal(got, want) {
			t.Fatalf("trial %d: best %d of %d: %v, want %v", trial, limit, n, got, want)
		}
		if len(a.touched) != 0 || slices.ContainsFunc(a.score, func(s float64) bool { return s != 0 }) {
			t.Fatalf("trial %d: the accumulator was not reset", trial)
		}
	}
}
