package evaluation

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// fixedRecommender recommends the same list to everyone.
type fixedRecommender struct {
	name    string
	list    []int32
	updates int
}

func (f *fixedRecommender) Name() string { return f.name }
func (f *fixedRecommender) Recommend(_ int32, k int, dst []int32) []int32 {
	return append(dst, f.list[:min(k, len(f.list))]...)
}
func (f *fixedRecommender) Update(context.Context, []Event) error { f.updates++; return nil }

// echoRecommender recommends, to each user, the item after the one of
// their latest applied event: it hits every event of a user who walks
// 0, 1, 2, ... only if the harness applies each event before scoring the
// user's next one.
type echoRecommender struct{ last map[int32]int32 }

func (e *echoRecommender) Name() string { return "echo" }
func (e *echoRecommender) Recommend(u int32, _ int, dst []int32) []int32 {
	if it, ok := e.last[u]; ok {
		return append(dst, it+1)
	}
	return dst
}
func (e *echoRecommender) Update(_ context.Context, evs []Event) error {
	for _, ev := range evs {
		e.last[ev.User] = ev.Item
	}
	return nil
}

func datasetOf(evs ...Event) *Dataset {
	ds := newDataset("test")
	users, items := 0, 0
	for _, e := range evs {
		users = max(users, int(e.User)+1)
		items = max(items, int(e.Item)+1)
	}
	for u := range users {
		ds.Users = append(ds.Users, "u"+string(rune('a'+u)))
	}
	for i := range items {
		ds.Items = append(ds.Items, "i"+string(rune('a'+i)))
	}
	ds.Events = evs
	return ds
}

func TestEvaluateMetrics(t *testing.T) {
	ds := datasetOf(
		Event{User: 0, Item: 0, TsMs: 1}, // warm-up
		Event{User: 1, Item: 3, TsMs: 2}, // cold user: skipped
		Event{User: 0, Item: 5, TsMs: 3}, // rank 1
		Event{User: 0, Item: 5, TsMs: 4}, // repeat of the previous item: skipped
		Event{User: 0, Item: NoItem, TsMs: 5},
		Event{User: 1, Item: 2, TsMs: 6}, // rank 3 (5 is dropped: no, 5 is not u1's previous) -> see below
		Event{User: 0, Item: 9, TsMs: 7}, // miss
		Event{User: 1, Item: 3, TsMs: 8}, // previous item of u1 is 2; 3 at rank 4 > K=3 after dropping 2: miss? see list
	)
	// List 5, 4, 2, 3. For u1 at ts 6 (previous item 3, dropped): 5, 4, 2
	// -> item 2 at rank 3. For u1 at ts 8 (previous 2, dropped): 5, 4, 3
	// -> item 3 at rank 3.
	fixed := &fixedRecommender{name: "fixed", list: []int32{5, 4, 2, 3}}
	rep, err := Evaluate(context.Background(), ds, []Recommender{fixed}, HarnessConfig{K: 3, EvalStart: 1, Buckets: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scored != 4 || rep.SkippedColdUser != 1 || rep.SkippedRepeat != 1 || rep.SkippedNoItem != 1 || rep.WarmupEvents != 1 {
		t.Fatalf("scored %d, cold %d, repeat %d, no item %d, warm-up %d", rep.Scored, rep.SkippedColdUser, rep.SkippedRepeat, rep.SkippedNoItem, rep.WarmupEvents)
	}
	r := rep.Result("fixed")
	wantNDCG := (1 + 2/math.Log2(4)) / 4
	wantMRR := (1 + 2.0/3) / 4
	if r.Hits != 3 || r.HR != 0.75 || math.Abs(r.NDCG-wantNDCG) > 1e-12 || math.Abs(r.MRR-wantMRR) > 1e-12 {
		t.Fatalf("got %+v, want hits 3, HR 0.75, NDCG %g, MRR %g", r.Metrics, wantNDCG, wantMRR)
	}
	if len(r.Series) != 2 || r.Series[0].Scored+r.Series[1].Scored != 4 || r.Series[0].FromMs != 2 || r.Series[1].ToMs != 8 {
		t.Errorf("series %+v", r.Series)
	}
	// With repeats scored, the repeat of item 5 is a hit at rank 1 and
	// nothing is dropped from the lists.
	rep, err = Evaluate(context.Background(), ds, []Recommender{fixed}, HarnessConfig{K: 3, EvalStart: 1, Repeats: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scored != 5 || rep.Result("fixed").Hits != 3 {
		t.Errorf("with repeats: scored %d, hits %d; want 5 and 3 (u1's 3 falls to rank 4)", rep.Scored, rep.Result("fixed").Hits)
	}
}

// TestEvaluateAppliesEachEventBeforeTheUsersNext: a user whose events
// follow each other directly in the stream must still be scored on the
// state after their previous event.
func TestEvaluateAppliesEachEventBeforeTheUsersNext(t *testing.T) {
	var evs []Event
	for i := range 50 {
		evs = append(evs, Event{User: int32(i % 3), Item: int32(i / 3), TsMs: int64(i)})
	}
	// A run of one user only: each of its events must be its own batch.
	for i := range 10 {
		evs = append(evs, Event{User: 1, Item: int32(17 + i), TsMs: int64(50 + i)})
	}
	echo := &echoRecommender{last: map[int32]int32{}}
	rep, err := Evaluate(context.Background(), datasetOf(evs...), []Recommender{echo}, HarnessConfig{K: 1, EvalStart: 3, MaxBatch: 2, Repeats: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Result("echo"); r.Scored != 57 || r.Hits != 57 {
		t.Fatalf("echo: %d hits of %d scored; want 57 of 57", r.Hits, r.Scored)
	}
}

// TestEvaluateExcludeSeen: seen items leave the lists, and events on them
// are not scored.
func TestEvaluateExcludeSeen(t *testing.T) {
	ds := datasetOf(
		Event{User: 0, Item: 1, TsMs: 1},
		Event{User: 0, Item: 2, TsMs: 2}, // list 1,2,3 minus seen {1} -> 2 at rank 1
		Event{User: 0, Item: 1, TsMs: 3}, // seen: skipped
		Event{User: 0, Item: 3, TsMs: 4}, // list minus {1,2} -> 3 at rank 1
		Event{User: 0, Item: 3, TsMs: 5}, // the previous item again: a repeat
	)
	fixed := &fixedRecommender{name: "fixed", list: []int32{1, 2, 3}}
	rep, err := Evaluate(context.Background(), ds, []Recommender{fixed}, HarnessConfig{K: 1, ExcludeSeen: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Result("fixed"); rep.Scored != 2 || rep.SkippedSeen != 1 || rep.SkippedRepeat != 1 || r.Hits != 2 {
		t.Fatalf("scored %d, skipped %d seen and %d repeats, hits %d; want 2, 1, 1, 2",
			rep.Scored, rep.SkippedSeen, rep.SkippedRepeat, r.Hits)
	}
	if d := (HarnessConfig{K: 10, ExcludeSeen: true}).WithDefaults().Depth(); d != 10+1+512 {
		t.Errorf("depth %d", d)
	}
}

type failingRecommender struct{ fixedRecommender }

func (f *failingRecommender) Update(context.Context, []Event) error { return errors.New("boom") }

func TestEvaluateErrors(t *testing.T) {
	ds := datasetOf(Event{User: 0, Item: 0, TsMs: 1}, Event{User: 0, Item: 1, TsMs: 2})
	ctx := context.Background()
	if _, err := Evaluate(ctx, ds, nil, HarnessConfig{}); err == nil {
		t.Error("no recommenders: no error")
	}
	if _, err := Evaluate(ctx, ds, []Recommender{&fixedRecommender{}}, HarnessConfig{K: -1}); err == nil || !strings.Contains(err.Error(), "k: must be in [1, 65535]") {
		t.Errorf("bad k: %v", err)
	}
	if _, err := Evaluate(ctx, ds, []Recommender{&failingRecommender{fixedRecommender{name: "bad"}}}, HarnessConfig{}); err == nil || !strings.Contains(err.Error(), "update bad: boom") {
		t.Errorf("failing update: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Evaluate(cancelled, ds, []Recommender{&fixedRecommender{}}, HarnessConfig{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	var calls []int
	fixed := &fixedRecommender{name: "f", list: []int32{1}}
	if _, err := Evaluate(ctx, ds, []Recommender{fixed}, HarnessConfig{Progress: func(done, total int) { calls = append(calls, done, total) }}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls[len(calls)-2:], []int{2, 2}) {
		t.Errorf("progress %v does not end at 2 of 2", calls)
	}
}

// TestEvaluateIntervals: the bootstrap intervals hold the point estimate,
// collapse for a recommender that always or never hits, and narrow as the
// scored events grow.
func TestEvaluateIntervals(t *testing.T) {
	width := map[int]float64{}
	for _, n := range []int{200, 5000} {
		var evs []Event
		for i := range n {
			// Each user's second event is on item 1 for every third user.
			u := int32(i)
			item := int32(2 + i%5)
			if i%3 == 0 {
				item = 1
			}
			evs = append(evs, Event{User: u, Item: 0, TsMs: int64(2 * i)}, Event{User: u, Item: item, TsMs: int64(2*i + 1)})
		}
		ds := datasetOf(evs...)
		recs := []Recommender{
			&fixedRecommender{name: "one", list: []int32{1}},
			&fixedRecommender{name: "none", list: []int32{99}},
		}
		rep, err := Evaluate(context.Background(), ds, recs, HarnessConfig{K: 1, Resamples: 400})
		if err != nil {
			t.Fatal(err)
		}
		one := rep.Result("one")
		if one.HRInterval.Low > one.HR || one.HRInterval.High < one.HR || one.HRInterval.Low == one.HRInterval.High {
			t.Fatalf("n=%d: HR %.4f outside or at a point interval %+v", n, one.HR, one.HRInterval)
		}
		if none := rep.Result("none"); none.HRInterval != (Interval{}) {
			t.Fatalf("n=%d: a recommender that never hits has interval %+v", n, none.HRInterval)
		}
		width[n] = one.HRInterval.High - one.HRInterval.Low
	}
	if width[5000] >= width[200]/3 {
		t.Errorf("interval width %.4f at 5000 events, %.4f at 200: want it ~sqrt(25)=5 times narrower", width[5000], width[200])
	}
}
