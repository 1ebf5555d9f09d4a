package retrieval

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const hourMs = int64(time.Hour / time.Millisecond)

// stream is a seeded clickstream: users with tastes over item blocks, so
// that co-visits have structure, with event weights 1, 2, 4 or 8, and up
// to an hour between events (so that a test crosses many half-lives).
func stream(seed uint64, users, items, n int) (user []int, visits []Visit) {
	return streamEvery(seed, users, items, n, hourMs)
}

// streamEvery is stream with up to stepMs between events.
func streamEvery(seed uint64, users, items, n int, stepMs int64) (user []int, visits []Visit) {
	rng := rand.New(rand.NewPCG(seed, 7))
	ts := int64(1_750_000_000_000)
	for range n {
		u := rng.IntN(users)
		block := (u * 7) % (items / 10)
		item := int32(block*10 + rng.IntN(10))
		if rng.IntN(5) == 0 {
			item = int32(rng.IntN(items))
		}
		ts += rng.Int64N(stepMs)
		user = append(user, u)
		visits = append(visits, Visit{Item: item, TsMs: ts, Weight: float32(int(1) << rng.IntN(4))})
	}
	return user, visits
}

func mustIndex(t testing.TB, cfg IndexConfig) *Index {
	t.Helper()
	x, err := NewIndex(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func snapshot(t testing.TB, x *Index) []byte {
	t.Helper()
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIndexDeterministicAcrossRestore: an index that learns a stream in
// one go and one that is snapshotted, restored into a new process's index
// part way and goes on are the same, byte for byte, over many seeds and
// cut points; a different stream gives different bytes.
func TestIndexDeterministicAcrossRestore(t *testing.T) {
	// A short trend half-life makes the streams cross several rescales.
	cfg := IndexConfig{Neighbours: 16, TopItems: 32, TrendHalfLife: time.Hour}
	for seed := range uint64(8) {
		users, visits := stream(seed, 300, 2000, 20_000)
		whole := mustIndex(t, cfg)
		windows := make([]Window, 300)
		for i, v := range visits {
			whole.Observe(&windows[users[i]], v)
		}
		cut := len(visits) * int(1+seed) / 10
		first := mustIndex(t, cfg)
		windows = make([]Window, 300)
		for i, v := range visits[:cut] {
			first.Observe(&windows[users[i]], v)
		}
		restored := mustIndex(t, cfg)
		if err := restored.UnmarshalBinary(snapshot(t, first)); err != nil {
			t.Fatalf("seed %d: restore: %v", seed, err)
		}
		for i, v := range visits[cut:] {
			restored.Observe(&windows[users[cut+i]], v)
		}
		a, b := snapshot(t, whole), snapshot(t, restored)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d, cut %d: restored index differs from the uninterrupted one (%d vs %d bytes)", seed, cut, len(a), len(b))
		}
		if whole.Stats().Rescales == 0 {
			t.Fatalf("seed %d: the stream never rescaled: the test does not cover it", seed)
		}
		if seed == 0 {
			other := mustIndex(t, cfg)
			windows = make([]Window, 300)
			for i, v := range visits[1:] {
				other.Observe(&windows[users[i+1]], v)
			}
			if bytes.Equal(a, snapshot(t, other)) {
				t.Fatal("a different stream gave the same bytes")
			}
		}
	}
}

// TestIndexNewItemIsRecommendedNextBatch: an item first visited in one
// batch is proposed, from the next, to a user who visits what led to it.
func TestIndexNewItemIsRecommendedNextBatch(t *testing.T) {
	x := mustIndex(t, IndexConfig{})
	windows := make([]Window, 3)
	ts := int64(1_750_000_000_000)
	// Batch t-1: an established catalogue.
	for i := range 200 {
		x.Observe(&windows[i%2], Visit{Item: int32(i % 20), TsMs: ts, Weight: 1})
	}
	// Batch t: user 0 views item 3, then item 500, never seen before.
	x.Observe(&windows[0], Visit{Item: 3, TsMs: ts + 1, Weight: 1})
	x.Observe(&windows[0], Visit{Item: 500, TsMs: ts + 2, Weight: 1})
	// Batch t+1: user 2 views item 3.
	x.Observe(&windows[2], Visit{Item: 3, TsMs: ts + 3, Weight: 1})
	for _, src := range []Source{&CovisitSource{Index: x}, &TransitionSource{Index: x}} {
		got := src.Propose(&windows[2], 50, nil, nil)
		if !slices.ContainsFunc(got, func(e Edge) bool { return e.Item == 500 }) {
			t.Errorf("%s proposes %v to user 2, without the new item 500", src.Name(), got)
		}
	}
}

// TestIndexBounded: lists never exceed Neighbours, items beyond MaxItems
// are dropped and counted, and co-visits of a stream that stopped long ago
// are pruned away.
func TestIndexBounded(t *testing.T) {
	cfg := IndexConfig{MaxItems: 1000, Neighbours: 8, HalfLife: time.Hour, TrendHalfLife: time.Hour}
	x := mustIndex(t, cfg)
	users, visits := stream(3, 200, 1200, 30_000)
	windows := make([]Window, 200)
	for i, v := range visits {
		x.Observe(&windows[users[i]], v)
	}
	for i := range x.items {
		if n, m := len(x.items[i].covisits), len(x.items[i].successors); n > 8 || m > 8 {
			t.Fatalf("item %d holds %d co-visits and %d successors, neighbours is 8", i, n, m)
		}
	}
	st := x.Stats()
	if st.Dropped == 0 || st.Items > 1000 || st.Visits+st.Dropped != int64(len(visits)) {
		t.Fatalf("stats %+v: want items <= 1000, some dropped, visits + dropped = %d", st, len(visits))
	}
	// Fifty half-lives later, one visit: everything older is below the
	// pruning weight.
	x.Observe(&Window{}, Visit{Item: 1, TsMs: visits[len(visits)-1].TsMs + 50*hourMs, Weight: 1})
	if after := x.Stats(); after.Edges != 0 {
		t.Fatalf("%d edges left after 50 half-lives (had %d)", after.Edges, st.Edges)
	}
}

// TestIndexDecay: counts and edges halve per half-life; the trend decays
// with its own.
func TestIndexDecay(t *testing.T) {
	x := mustIndex(t, IndexConfig{HalfLife: 2 * time.Hour, TrendHalfLife: time.Hour})
	var w Window
	ts := int64(1_750_000_000_000)
	x.Observe(&w, Visit{Item: 0, TsMs: ts, Weight: 4})
	x.Observe(&w, Visit{Item: 1, TsMs: ts, Weight: 1})
	x.Observe(&Window{}, Visit{Item: 2, TsMs: ts + 2*hourMs, Weight: 1})
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"count after one half-life", x.Count(0), 2},
		{"trend after two trend half-lives", x.Trend(0), 1},
		{"co-visit after one half-life", float64(x.Covisits(1, nil)[0].Weight), 1}, // sqrt(4*1)/1, halved
	} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s: %g, want %g", c.name, c.got, c.want)
		}
	}
}

// TestIndexKeepsHeavyNeighbours: with room for 4 neighbours, an item
// co-visited with one partner 100 times and with 200 others once each
// keeps the partner first: Space-Saving keeps every item seen more than
// total/Neighbours times (300/4 here).
func TestIndexKeepsHeavyNeighbours(t *testing.T) {
	x := mustIndex(t, IndexConfig{Neighbours: 4, Window: 1})
	ts := int64(1_750_000_000_000)
	for i := range 200 {
		var w Window
		x.Observe(&w, Visit{Item: 0, TsMs: ts, Weight: 1})
		x.Observe(&w, Visit{Item: int32(10 + i), TsMs: ts, Weight: 1})
		if i%2 == 0 {
			var v Window
			x.Observe(&v, Visit{Item: 0, TsMs: ts, Weight: 1})
			x.Observe(&v, Visit{Item: 1, TsMs: ts, Weight: 1})
		}
	}
	if got := x.Covisits(0, nil); len(got) != 4 || got[0].Item != 1 {
		t.Fatalf("item 0's neighbours %v: want 4 with item 1 first", got)
	}
}

func TestIndexSnapshotErrors(t *testing.T) {
	x := mustIndex(t, IndexConfig{Neighbours: 8})
	var w Window
	for i := range 50 {
		x.Observe(&w, Visit{Item: int32(i % 7), TsMs: int64(1_750_000_000_000 + i), Weight: 1})
	}
	good := snapshot(t, x)
	for _, tc := range []struct {
		name string
		cfg  IndexConfig
		data []byte
		want string
	}{
		{"bad magic", IndexConfig{Neighbours: 8}, append([]byte("XXXX"), good[4:]...), "bad magic"},
		{"truncated", IndexConfig{Neighbours: 8}, good[:len(good)-3], "truncated"},
		{"trailing bytes", IndexConfig{Neighbours: 8}, append(slices.Clone(good), 0), "after the end"},
		{"other configuration", IndexConfig{Neighbours: 16}, good, "restore with the configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := mustIndex(t, tc.cfg)
			err := y.UnmarshalBinary(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if y.Stats().Items != 0 {
				t.Fatal("a failed restore changed the index")
			}
		})
	}
}

func TestIndexConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  IndexConfig
		want string
	}{
		{IndexConfig{MaxItems: -1}, "max_items"},
		{IndexConfig{Neighbours: 70000}, "neighbours"},
		{IndexConfig{HalfLife: time.Microsecond}, "half_life"},
		{IndexConfig{TopItems: -2}, "top_items"},
	} {
		if _, err := NewIndex(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

// BenchmarkIndexObserve learns a 100k-item stream of a busy site (a
// million events in about a day) and reports the memory the index holds
// per item.
func BenchmarkIndexObserve(b *testing.B) {
	users, visits := streamEvery(1, 50_000, 100_000, 1_000_000, 200)
	x := mustIndex(b, IndexConfig{})
	windows := make([]Window, 50_000)
	b.ResetTimer()
	for i := range b.N {
		j := i % len(visits)
		x.Observe(&windows[users[j]], visits[j])
	}
	b.StopTimer()
	st := x.Stats()
	if st.Items > 0 {
		b.ReportMetric(float64(st.Bytes)/float64(st.Items), "bytes/item")
	}
}
