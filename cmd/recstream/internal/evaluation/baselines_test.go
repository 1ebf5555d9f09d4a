package evaluation

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func items(evs ...int32) []Event {
	out := make([]Event, len(evs))
	for i, it := range evs {
		out[i] = Event{User: 0, Item: it, TsMs: int64(i)}
	}
	return out
}

// TestPopularityMatchesFullSort: the incrementally kept top list must equal
// a full sort of the counts (count descending, index ascending) after
// every update, whatever the order of increments.
func TestPopularityMatchesFullSort(t *testing.T) {
	const n, depth = 40, 7
	r := rand.New(rand.NewPCG(3, 4))
	p := NewPopularity(n, depth)
	counts := make([]int64, n)
	for step := range 2000 {
		it := int32(r.IntN(n) * r.IntN(n) / n) // skewed
		if err := p.Update(context.Background(), []Event{{Item: it}, {Item: NoItem}}); err != nil {
			t.Fatal(err)
		}
		counts[it]++
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		sort.SliceStable(want, func(a, b int) bool { return counts[want[a]] > counts[want[b]] })
		if got := p.Recommend(5, depth, nil); !slices.Equal(got, want[:min(depth, len(got))]) || len(got) != min(depth, countNonZero(counts)) {
			t.Fatalf("step %d: top %v, want %v", step, got, want[:depth])
		}
	}
	if got := p.Recommend(0, 3, []int32{99}); len(got) != 4 || got[0] != 99 {
		t.Errorf("Recommend must append to dst: %v", got)
	}
}

func countNonZero(c []int64) int {
	n := 0
	for _, v := range c {
		if v > 0 {
			n++
		}
	}
	return n
}

func TestRecentPopularityForgets(t *testing.T) {
	rp := NewRecentPopularity(10, 3, 4)
	ctx := context.Background()
	_ = rp.Update(ctx, items(1, 1, 1, 2))
	if got := rp.Recommend(0, 3, nil); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("window [1 1 1 2]: %v", got)
	}
	_ = rp.Update(ctx, items(3, 3, 2))
	// window is now [2 3 3 2]: item 1 left it.
	if got := rp.Recommend(0, 3, nil); !slices.Equal(got, []int32{2, 3}) {
		t.Fatalf("window [2 3 3 2]: %v", got)
	}
	_ = rp.Update(ctx, items(4, 4, 4, 4, 4))
	if got := rp.Recommend(0, 2, nil); !slices.Equal(got, []int32{4}) {
		t.Fatalf("window [4 4 4 4]: %v", got)
	}
}

func TestCooccurrenceRecommendsRelatedItems(t *testing.T) {
	ctx := context.Background()
	ev := func(u, it int32) Event { return Event{User: u, Item: it} }
	// Window 1: only consecutive distinct items are related. Users 0 and 1
	// browse 1 -> 2, user 2 browses 4 -> 1; item 9 is popular on its own
	// (user 3 repeats it: a repeat is not a pair).
	c := NewCooccurrence(20, 5, CooccurrenceConfig{Window: 1, Recent: 1, Depth: 5})
	_ = c.Update(ctx, []Event{ev(0, 1), ev(0, 2), ev(1, 1), ev(1, 2), ev(2, 4), ev(2, 1),
		ev(3, 9), ev(3, 9), ev(3, 9), ev(3, 9), {User: 3, Item: NoItem}})
	// User 2's last item is 1: related 2 (twice) before 4 (once), then the
	// popularity fill: 9 (4 events), 1 (3 events).
	if got := c.Recommend(2, 4, nil); !slices.Equal(got, []int32{2, 4, 9, 1}) {
		t.Fatalf("after item 1: %v, want [2 4 9 1]", got)
	}
	// User 4 has no history: the popularity fill only, appended to dst.
	if got := c.Recommend(4, 2, []int32{7}); !slices.Equal(got, []int32{7, 9, 1}) {
		t.Fatalf("no history: %v, want [7 9 1]", got)
	}

	// Recent 2 (and a window of 2, which bounds the history kept): the
	// votes of the user's last two items add up (the last counts 1, the one
	// before 1/2). Every user has two items, so the pairs are as above.
	c = NewCooccurrence(20, 5, CooccurrenceConfig{Window: 2, Recent: 2})
	_ = c.Update(ctx, []Event{ev(0, 1), ev(0, 2), ev(1, 3), ev(1, 2), ev(2, 1), ev(2, 5), ev(3, 3), ev(3, 6), ev(4, 1), ev(4, 3)})
	// Related: 1:{2 5 3}, 3:{2 6 1}. User 4 (1 then 3): 2 gets 1+1/2, 1
	// and 6 get 1 (tie: lower index first), 3 and 5 get 1/2.
	if got := c.Recommend(4, 5, nil); !slices.Equal(got, []int32{2, 1, 6, 3, 5}) {
		t.Fatalf("after 1, 3: %v, want [2 1 6 3 5]", got)
	}
}
