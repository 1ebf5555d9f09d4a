package scorers

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/state"
)

// retrievalStream is a clickstream over 4 partitions: users keyed to a
// partition, each browsing one of a few interest groups, so that
// co-visits carry signal, with purchases and some new items on the way.
func retrievalStream(seed uint64, n int) []testEvent {
	r := rand.New(rand.NewPCG(seed, seed+1))
	const users, groups, perGroup, parts = 60, 6, 40, 4
	next := map[int32]int64{}
	var evs []testEvent
	for i := range n {
		u := r.IntN(users)
		part := int32(u % parts)
		g := u % groups
		item := fmt.Sprintf("g%d-i%03d", g, r.IntN(perGroup))
		if i > n/2 && r.IntN(30) == 0 {
			item = fmt.Sprintf("new-%d-%d", g, r.IntN(5)) // appear half way
		}
		typ := []uint8{typeView, typeView, typeView, 1, 2, typePurchase}[r.IntN(6)]
		evs = append(evs, testEvent{user: fmt.Sprintf("u%02d", u), item: item, typ: typ,
			ts: 1_700_000_000_000 + int64(i)*60_000, partition: part, offset: next[part]})
		next[part]++
	}
	return evs
}

// interleave reorders evs as a consumer may deliver them: each partition's
// events stay in offset order, partitions are mixed at random.
func interleave(evs []testEvent, seed uint64) []testEvent {
	byPart := map[int32][]testEvent{}
	var parts []int32
	for _, e := range evs {
		if _, ok := byPart[e.partition]; !ok {
			parts = append(parts, e.partition)
		}
		byPart[e.partition] = append(byPart[e.partition], e)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]testEvent, 0, len(evs))
	for len(out) < len(evs) {
		p := parts[r.IntN(len(parts))]
		if q := byPart[p]; len(q) > 0 {
			take := min(len(q), 1+r.IntN(20))
			out = append(out, q[:take]...)
			byPart[p] = q[take:]
		}
	}
	return out
}

func retrievalScorer(t *testing.T, dir string) *Scorer {
	return newTestScorer(t, Config{ModelDir: dir, Recommender: RecommenderRetrieval, MaxExclude: 8})
}

// recordKey is how the drills compare rewrites: the same (user, version)
// must carry the same record.
func recordKey(r schemas.Recommendation) string { return fmt.Sprintf("%s@%d", r.UserID, r.Version) }

func recordJSON(t *testing.T, r schemas.Recommendation) string {
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

// TestRetrievalScorerDeterministic checks what the drills rely on: a
// user's record at a given input position is the same however the
// partitions interleave, wherever batches are cut, and across a
// checkpoint (store and retrieval state) taken and restored into a new
// scorer part way, as after kill -9.
func TestRetrievalScorerDeterministic(t *testing.T) {
	dir := scorertest.WriteModel(t, scorertest.Spec(200, 16, 3))
	evs := retrievalStream(11, 6000)
	type run struct {
		name    string
		order   []testEvent
		maxCut  int
		restart int // restore into a new scorer after this many batches; 0: never
	}
	runs := []run{
		{"in input order, one batch", evs, len(evs), 0},
		{"interleaved, batches of 1..500", interleave(evs, 1), 500, 0},
		{"interleaved otherwise, batches of 1..40", interleave(evs, 2), 40, 0},
		{"interleaved, restored after 7 batches", interleave(evs, 3), 300, 7},
		{"interleaved, restored after 20 batches", interleave(evs, 4), 150, 20},
	}
	var want map[string]string
	for _, rn := range runs {
		s := retrievalScorer(t, dir)
		got := map[string]string{}
		cut := rand.New(rand.NewPCG(uint64(rn.maxCut), 5))
		for start, batches := 0, 0; start < len(rn.order); batches++ {
			if rn.restart > 0 && batches == rn.restart {
				s = restoreInto(t, s, dir)
			}
			size := min(len(rn.order)-start, 1+cut.IntN(rn.maxCut))
			for _, rec := range score(t, s, rn.order[start:start+size]) {
				if rec.ModelVersion != s.ModelVersion() || !strings.HasPrefix(rec.ModelVersion, "retrieval-") {
					t.Fatalf("%s: model_version %q, scorer says %q", rn.name, rec.ModelVersion, s.ModelVersion())
				}
				got[recordKey(rec)] = recordJSON(t, rec)
			}
			start += size
		}
		if want == nil {
			want = got
			continue
		}
		diff := 0
		for k, g := range got {
			if w, ok := want[k]; ok && w != g {
				if diff++; diff <= 3 {
					t.Errorf("%s: record %s\n got %s\nwant %s", rn.name, k, g, w)
				}
			}
		}
		if diff > 0 {
			t.Errorf("%s: %d records differ from the first run's", rn.name, diff)
		}
	}
}

// restoreInto checkpoints s as the pipeline does, closes it, and returns a
// new scorer restored from the checkpoint's files read back from disk.
func restoreInto(t *testing.T, s *Scorer, dir string) *Scorer {
	t.Helper()
	snap := state.Capture(s.Store(), "events", s.ModelVersion(), map[int32]int64{})
	var err error
	if snap.Extras, err = s.CaptureExtras(); err != nil {
		t.Fatal(err)
	}
	if len(snap.Extras) == 0 {
		t.Fatal("the retrieval scorer captured no retrieval state")
	}
	ckpt, err := state.NewCheckpointStore(state.CheckpointConfig{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ckpt.Save(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := ckpt.LoadLatest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := retrievalScorer(t, dir)
	if err := loaded.Restore(n.Store()); err != nil {
		t.Fatal(err)
	}
	if err := n.RestoreExtras(loaded.Extras); err != nil {
		t.Fatal(err)
	}
	if a, b := s.Stats().RetrievalItems, n.Stats().RetrievalItems; a != b || a == 0 {
		t.Fatalf("restored scorer knows %d items, the checkpointed one %d", b, a)
	}
	return n
}

// TestRetrievalScorerLearnsFromTheStream checks the recommender itself: an
// item no model knows, first seen in one batch, is recommended from the
// next to a user whose items co-occur with it; purchases are never
// recommended again; a cold user gets the popular items.
func TestRetrievalScorerLearnsFromTheStream(t *testing.T) {
	dir := scorertest.WriteModel(t, scorertest.Spec(50, 8, 3))
	s := retrievalScorer(t, dir)
	var evs []testEvent
	off := int64(0)
	add := func(user, item string, typ uint8) {
		evs = append(evs, testEvent{user: user, item: item, typ: typ, ts: 1_700_000_000_000 + off*1000, offset: off})
		off++
	}
	// Batch 1: three users go from a known item to a brand-new one.
	for _, u := range []string{"a", "b", "c"} {
		add(u, "i0001", typeView)
		add(u, "brand-new", typeView)
	}
	score(t, s, evs)
	// Batch 2: d views i0001 and buys i0002.
	evs = evs[:0]
	add("d", "i0002", typePurchase)
	add("d", "i0001", typeView)
	recs := score(t, s, evs)
	if len(recs) != 1 || recs[0].UserID != "d" {
		t.Fatalf("records %+v, want one for d", recs)
	}
	if len(recs[0].Items) == 0 || recs[0].Items[0] != "brand-new" {
		t.Errorf("d viewed i0001, which three users followed with brand-new; recommended %v", recs[0].Items)
	}
	if slices.Contains(recs[0].Items, "i0002") || slices.Contains(recs[0].Items, "i0001") && recs[0].Items[0] == "i0001" {
		t.Errorf("d bought i0002, yet it is recommended: %v", recs[0].Items)
	}
	for i := 1; i < len(recs[0].Scores); i++ {
		if recs[0].Scores[i] > recs[0].Scores[i-1] {
			t.Errorf("scores not best first: %v", recs[0].Scores)
		}
	}
	// Batch 3: a cold user with an item nobody else had.
	evs = evs[:0]
	add("e", "lonely", typeView)
	recs = score(t, s, evs)
	if len(recs) != 1 || len(recs[0].Items) == 0 || !slices.Contains(recs[0].Items, "i0001") {
		t.Errorf("cold user e should get the popular items (i0001 first among them): %+v", recs)
	}
	if st := s.Stats(); st.Recommender != RecommenderRetrieval || st.RetrievalItems != 4 || st.Device != DeviceCPU {
		t.Errorf("stats %+v, want the retrieval recommender knowing 4 items", st)
	}
}

func TestRetrievalScorerConfig(t *testing.T) {
	dir := scorertest.WriteModel(t, scorertest.Spec(20, 8, 3))
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"unknown recommender", func(c *Config) { c.Recommender = "magic" }, `recommender: must be model or retrieval, got "magic"`},
		{"neighbours", func(c *Config) { c.Retrieval.Index.Neighbours = -1 }, "retrieval.index.neighbours: must be in [1, 65535], got -1"},
		{"recent above window", func(c *Config) { c.Retrieval.Recent = 50 }, "retrieval.recent: must be in [1, index.window=10], got 50"},
		{"negative weight", func(c *Config) { c.Retrieval.Weights.Trending = -1 }, "retrieval.weights.trending: must be >= 0, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{ModelDir: dir, Recommender: RecommenderRetrieval}
			tc.change(&cfg)
			_, err := NewScorer(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRetrievalScore measures Scorer.Score with the retrieval
// recommender end to end (grouping, learning each event, candidates from
// four sources, exclusion, ranking, records) on 1024 users of one event
// each, after a warm-up that fills the neighbour lists. The catalogue
// grows from 10k to 1M items: retrieval reads neighbour lists, whose size
// is capped, so its cost should not grow with it.
func BenchmarkRetrievalScore(b *testing.B) {
	dir := scorertest.WriteModel(b, scorertest.Spec(100, 8, 1))
	for _, items := range []int{benchItems, 10 * benchItems, 100 * benchItems} {
		b.Run(fmt.Sprintf("items=%d/B=1024", items), func(b *testing.B) {
			s, err := NewScorer(Config{ModelDir: dir, Recommender: RecommenderRetrieval}, nil)
			if err != nil {
				b.Fatalf("new scorer (run make setup): %v", err)
			}
			defer s.Close()
			const users, batch, warm = 50_000, 1024, 300
			g := newBenchStream(items, users, 4)
			for range warm {
				out, err := s.Score(b.Context(), g.batch(b, batch))
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				in := g.batch(b, batch)
				b.StartTimer()
				out, err := s.Score(b.Context(), in)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				out.Release()
				in.Release()
				b.StartTimer()
			}
			reportRefreshes(b, batch)
			b.StopTimer()
			items := s.Stats().RetrievalItems
			userBytes, indexBytes := s.retr.memory()
			b.ReportMetric(float64(items), "items-known")
			b.ReportMetric(float64(indexBytes)/float64(items), "index-B/item")
			b.ReportMetric(float64(userBytes)/float64(min(users, len(s.retr.users))), "retrieval-B/user")
		})
	}
}

// benchStream draws a clickstream with structure: each user browses an
// interest group (a block of the catalogue) 80 % of the time, the whole
// catalogue otherwise, items Zipf-distributed within either; users are
// keyed to parts partitions.
type benchStream struct {
	r               *rand.Rand
	groupZipf, zipf *rand.Zipf
	items, users    int
	parts           int32
	block           int
	offsets         []int64
	evs             []testEvent
	tsMs            int64
}

func newBenchStream(items, users, parts int) *benchStream {
	r := rand.New(rand.NewPCG(9, 10))
	const groups = 100
	block := items / groups
	return &benchStream{r: r, items: items, users: users, parts: int32(parts), block: block,
		groupZipf: rand.NewZipf(r, 1.1, 2, uint64(block-1)), zipf: rand.NewZipf(r, 1.1, 2, uint64(items-1)),
		offsets: make([]int64, parts), tsMs: 1_700_000_000_000}
}

func (g *benchStream) batch(tb testing.TB, n int) *schemas.EventBatch {
	g.evs = g.evs[:0]
	for range n {
		u := g.r.IntN(g.users)
		part := int32(u) % g.parts
		item := int(g.zipf.Uint64())
		if g.r.IntN(5) != 0 {
			item = (u%100)*g.block + int(g.groupZipf.Uint64())
		}
		g.tsMs += 50
		g.evs = append(g.evs, testEvent{user: fmt.Sprintf("user-%06d", u), item: fmt.Sprintf("i%07d", item),
			typ: uint8(g.r.IntN(4)), ts: g.tsMs, partition: part, offset: g.offsets[part]})
		g.offsets[part]++
	}
	return makeBatch(tb, g.evs)
}

// TestRetrievalScorerUserInTwoPartitions covers a re-keyed input: a user
// whose events come from two partitions in one batch is learned in input
// order (one goroutine), their window restarting in the partition of each
// switch, and everyone still gets a record.
func TestRetrievalScorerUserInTwoPartitions(t *testing.T) {
	dir := scorertest.WriteModel(t, scorertest.Spec(20, 8, 3))
	s := retrievalScorer(t, dir)
	evs := []testEvent{
		{user: "a", item: "i1", typ: typeView, ts: 1000, partition: 0, offset: 0},
		{user: "a", item: "i2", typ: typeView, ts: 1001, partition: 0, offset: 1},
		{user: "b", item: "i1", typ: typeView, ts: 1002, partition: 1, offset: 0},
		{user: "b", item: "i3", typ: typeView, ts: 1003, partition: 1, offset: 1},
		{user: "x", item: "i1", typ: typeView, ts: 1004, partition: 0, offset: 2},
		{user: "x", item: "i1", typ: typeView, ts: 1005, partition: 1, offset: 2},
	}
	recs := score(t, s, evs)
	got := map[string][]string{}
	for _, r := range recs {
		got[r.UserID] = r.Items
	}
	if len(got) != 3 {
		t.Fatalf("records for %v, want a, b and x", got)
	}
	// x's last event is in partition 1, where i1 was followed by i3.
	if items := got["x"]; len(items) == 0 || items[0] != "i3" {
		t.Errorf("x's window restarted in partition 1 with i1, whose co-visit there is i3; got %v", items)
	}
}

// memory estimates the bytes the stage holds: per-user state (windows and
// exclude lists, over every slot) and the partitions' indexes with their
// vocabularies (ids and map entries).
func (st *retrievalStage) memory() (users, index int64) {
	const userBytes, visitBytes, mapEntryBytes = int64(unsafe.Sizeof(userRecent{})), 16, 48
	users = int64(cap(st.users)) * userBytes
	for i := range st.users {
		users += int64(cap(st.users[i].window.Visits))*visitBytes + int64(cap(st.users[i].excluded))*4
	}
	for _, pi := range st.parts {
		index += pi.index.Stats().Bytes + int64(cap(pi.ids))*16 + int64(len(pi.ids))*mapEntryBytes
		for _, id := range pi.ids {
			index += int64(len(id))
		}
	}
	return users, index
}
