package scorers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/cuda"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/state"
)

// Type codes of schemas.DefaultEventTypes.
const (
	typeView     uint8 = 0
	typeClick    uint8 = 1
	typeCart     uint8 = 2
	typePurchase uint8 = 3
	typeSearch   uint8 = 4
)

// newTestScorer opens a scorer for a test; most tests here are of the
// model path, so the model fills the records unless cfg says otherwise.
func newTestScorer(t *testing.T, cfg Config) *Scorer {
	t.Helper()
	if cfg.Recommender == "" {
		cfg.Recommender = RecommenderModel
	}
	s, err := NewScorer(cfg, nil)
	if err != nil {
		t.Fatalf("new scorer (run make setup if the library is missing): %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close scorer: %v", err)
		}
	})
	return s
}

// score runs one batch and returns its records.
func score(t *testing.T, s *Scorer, evs []testEvent) []schemas.Recommendation {
	t.Helper()
	batch := makeBatch(t, evs)
	defer batch.Release()
	out, err := s.Score(context.Background(), batch)
	if err != nil {
		t.Fatalf("score: %v", err)
	}
	defer out.Release()
	rows := schemas.RecRows(out.Recs)
	recs := make([]schemas.Recommendation, out.Recs.NumRows())
	for i := range recs {
		recs[i] = rows.Row(i)
	}
	return recs
}

func TestScorerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"model_dir", func(c *Config) { c.ModelDir = "" }, "model_dir: must be set"},
		{"top_k", func(c *Config) { c.TopK = -1 }, "top_k: must be >= 0, got -1"},
		{"steps", func(c *Config) { c.StepsPerRound = -2 }, "steps_per_round: must be >= 0, got -2"},
		{"max_exclude", func(c *Config) { c.MaxExclude = -1 }, "max_exclude: must be in [1, 65535], got -1"},
		{"max_users", func(c *Config) { c.MaxUsers = -5 }, "max_users: must be in"},
		{"batch_users", func(c *Config) { c.BatchUsers = -1 }, "batch_users: must be >= 0, got -1"},
		{"decay", func(c *Config) { c.DecayHalfLife = time.Microsecond }, "decay_half_life: must be >= 1ms"},
		{"threads", func(c *Config) { c.IntraOpThreads = -1 }, "intra_op_threads: must be >= 0"},
		{"weight", func(c *Config) { c.TypeWeights["view"] = -1 }, `type_weights: weight of "view" must be 0 or in`},
		{"missing weight", func(c *Config) { c.EventTypes = append(c.EventTypes, "like") }, `type_weights: no weight for event type "like"`},
		{"exclude type", func(c *Config) { c.ExcludeTypes = []string{"refund"} }, `exclude_types: "refund" is not an event type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ModelDir: "m"}.WithDefaults()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	c := Config{ModelDir: "m", TypeWeights: map[string]float32{"search": 0}}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.TypeWeights["search"] != 0 || c.TypeWeights["purchase"] != 8 || c.MaxExclude != 32 || c.MaxUsers != 1_000_000 ||
		c.DecayHalfLife != 24*time.Hour || !slices.Equal(c.ExcludeTypes, []string{"purchase"}) {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// TestScorerMatchesReference checks each record against the plain Go
// reference: decays from the events' times, type weights, more events than
// one run holds, purchases excluded.
func TestScorerMatchesReference(t *testing.T) {
	const n, d = 300, 16
	spec := scorertest.Spec(n, d, 11)
	dir := scorertest.WriteModel(t, spec)
	s := newTestScorer(t, Config{ModelDir: dir, BatchUsers: 2})
	tower := scorertest.TowerFromSpec(t, spec)
	halfLife := float64(DefaultDecayHalfLife.Milliseconds())

	r := rand.New(rand.NewPCG(21, 22))
	users := []string{"u-a", "u-b", "u-c", "u-d", "u-e"}
	counts := map[string]int{"u-a": 20, "u-b": 1, "u-c": 8, "u-d": 9, "u-e": 3}
	var evs []testEvent
	ts := int64(1_700_000_000_000)
	for len(counts) > 0 {
		u := users[r.IntN(len(users))]
		if counts[u] == 0 {
			continue
		}
		counts[u]--
		if counts[u] == 0 {
			delete(counts, u)
		}
		ts += int64(r.IntN(3_600_000))
		typ := uint8(r.IntN(4)) // view, click, cart, purchase
		evs = append(evs, testEvent{user: u, item: fmt.Sprintf("i%04d", r.IntN(n)), typ: typ, ts: ts, partition: 2, offset: int64(100 + len(evs))})
	}
	recs := score(t, s, evs)

	var order []string
	for _, e := range evs {
		if !slices.Contains(order, e.user) {
			order = append(order, e.user)
		}
	}
	if len(recs) != len(order) {
		t.Fatalf("%d records for %d users", len(recs), len(order))
	}
	k := models.DefaultTopK
	for i, rec := range recs {
		if rec.UserID != order[i] {
			t.Fatalf("record %d is for %s, want first-seen order %v", i, rec.UserID, order)
		}
		state := make([]float32, d)
		var exclude []int64
		newest, last := int64(math.MinInt64), testEvent{}
		for _, e := range evs {
			if e.user != rec.UserID {
				continue
			}
			decay := float32(1)
			if newest != math.MinInt64 && e.ts > newest {
				decay = models.DecayFactor(e.ts-newest, halfLife)
			}
			newest = max(newest, e.ts)
			item := int64(s.Model().ItemIndex(e.item))
			tower.Update(state, []int64{item}, []int64{int64(e.typ) + 1}, []float32{decay})
			if e.typ == typePurchase && !slices.Contains(exclude, item) {
				exclude = append(exclude, item)
			}
			last = e
		}
		wantScores := make([]float32, k)
		wantItems := make([]int64, k)
		tower.TopK(state, exclude, k, wantScores, wantItems)
		if rec.Version != uint64(last.offset) || rec.Offset != last.offset || rec.Partition != 2 ||
			rec.EventTsMs != newest || rec.ProducedAtMs != last.ts+5 || rec.ModelVersion != spec.Version {
			t.Errorf("%s: record position/version fields %+v, want offset %d ts %d", rec.UserID, rec, last.offset, newest)
		}
		if len(rec.Items) != k || len(rec.Scores) != k {
			t.Fatalf("%s: %d items, %d scores, want %d", rec.UserID, len(rec.Items), len(rec.Scores), k)
		}
		for j := range k {
			if math.Abs(float64(rec.Scores[j]-wantScores[j])) > 1e-5*max(1, math.Abs(float64(wantScores[j]))) {
				t.Fatalf("%s: score %d = %g, reference %g", rec.UserID, j, rec.Scores[j], wantScores[j])
			}
			if want := s.Model().ItemID(wantItems[j]); rec.Items[j] != want {
				other := slices.Index(wantItems, int64(s.Model().ItemIndex(rec.Items[j])))
				if other < 0 || math.Abs(float64(wantScores[other]-wantScores[j])) > 1e-5 {
					t.Fatalf("%s: item %d = %s, reference %s", rec.UserID, j, rec.Items[j], want)
				}
			}
		}
		got, ok := s.Store().Get(rec.UserID)
		if !ok {
			t.Fatalf("%s not in the store", rec.UserID)
		}
		for j := range d {
			if math.Float32bits(got.State[j]) != math.Float32bits(state[j]) {
				t.Fatalf("%s: stored state[%d] = %g, reference %g", rec.UserID, j, got.State[j], state[j])
			}
		}
	}
	if s.Users() != len(order) {
		t.Errorf("Users() = %d, want %d", s.Users(), len(order))
	}
}

func TestScorerColdUserGetsPopularity(t *testing.T) {
	spec := scorertest.Spec(50, 8, 3)
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, spec), TopK: 5})
	tower := scorertest.TowerFromSpec(t, spec)
	recs := score(t, s, []testEvent{
		{user: "searcher", typ: typeSearch, ts: 1000, offset: 7},
		{user: "stranger", item: "not-in-model", typ: typeView, ts: 1000, offset: 8},
	})
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (events without a known item still refresh)", len(recs))
	}
	for _, rec := range recs {
		want := []string{"i0000", "i0001", "i0002", "i0003", "i0004"}
		if !slices.Equal(rec.Items, want) {
			t.Errorf("%s: items %v, want the most popular %v", rec.UserID, rec.Items, want)
		}
		for j, score := range rec.Scores {
			if score != tower.Prior[j+1] {
				t.Errorf("%s: score %d = %g, want the prior %g", rec.UserID, j, score, tower.Prior[j+1])
			}
		}
	}
}

func TestScorerExcludesPurchases(t *testing.T) {
	spec := scorertest.Spec(100, 8, 4)
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, spec), TopK: 10})
	var evs []testEvent
	for i := range 5 {
		evs = append(evs, testEvent{user: "buyer", item: "i0042", typ: typeCart, ts: 1000, offset: int64(i)})
	}
	recs := score(t, s, evs)
	if recs[0].Items[0] != "i0042" {
		t.Fatalf("after 5 add-to-carts of i0042 the top item is %s; the test needs it first", recs[0].Items[0])
	}
	recs = score(t, s, []testEvent{{user: "buyer", item: "i0042", typ: typePurchase, ts: 2000, offset: 5}})
	if slices.Contains(recs[0].Items, "i0042") {
		t.Fatalf("purchased item still recommended: %v", recs[0].Items)
	}
	recs = score(t, s, []testEvent{{user: "buyer", item: "i0042", typ: typeView, ts: 3000, offset: 6}})
	if slices.Contains(recs[0].Items, "i0042") || len(recs[0].Items) != 10 {
		t.Fatalf("purchased item back in a later batch, or short list: %v", recs[0].Items)
	}
	u, _ := s.Store().Get("buyer")
	if !slices.Equal(u.Bought, []int32{43}) {
		t.Fatalf("bought = %v, want [43] (index of i0042)", u.Bought)
	}
}

func TestScorerExcludeListKeepsNewest(t *testing.T) {
	spec := scorertest.Spec(20, 4, 5)
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, spec), MaxExclude: 3})
	var evs []testEvent
	for i := range 5 {
		evs = append(evs, testEvent{user: "u", item: fmt.Sprintf("i%04d", i), typ: typePurchase, ts: 1000, offset: int64(i)})
	}
	recs := score(t, s, evs)
	u, _ := s.Store().Get("u")
	if !slices.Equal(u.Bought, []int32{3, 4, 5}) {
		t.Fatalf("bought = %v, want the newest three [3 4 5]", u.Bought)
	}
	for _, id := range []string{"i0002", "i0003", "i0004"} {
		if slices.Contains(recs[0].Items, id) {
			t.Errorf("%s bought and still recommended: %v", id, recs[0].Items)
		}
	}
	if len(recs[0].Items) != 17 {
		t.Errorf("%d items; 20 items less 3 excluded leaves 17", len(recs[0].Items))
	}
}

func TestScorerUnknownItemAdvancesVersionOnly(t *testing.T) {
	spec := scorertest.Spec(40, 8, 6)
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, spec)})
	first := score(t, s, []testEvent{{user: "u", item: "i0003", typ: typeClick, ts: 5000, offset: 10}})
	before, _ := s.Store().Get("u")
	second := score(t, s, []testEvent{{user: "u", item: "new-item", typ: typeClick, ts: 5000, offset: 11}})
	after, _ := s.Store().Get("u")
	if second[0].Version != 11 || after.Offset != 11 {
		t.Fatalf("version %d, stored offset %d; want 11", second[0].Version, after.Offset)
	}
	if !slices.Equal(before.State, after.State) || !slices.Equal(first[0].Items, second[0].Items) || !slices.Equal(first[0].Scores, second[0].Scores) {
		t.Fatal("an unknown item at the same time changed the state or the recommendations")
	}
}

// TestScorerDeterminism feeds the same events to scorers that split them
// differently (one batch; many batches of varied sizes; runs of 1 or 7
// users; one ONNX thread; a model unrolled over 3 steps instead of 8) and
// requires byte-identical final states and records, on CPU and, where a
// GPU is, on the GPU (the two devices' scores may differ in their last
// bits, so each is compared with itself: TestScorerGPUMatchesCPU compares
// them with each other).
func TestScorerDeterminism(t *testing.T) {
	for _, device := range []string{DeviceCPU, DeviceCUDA} {
		t.Run(device, func(t *testing.T) {
			if device == DeviceCUDA {
				if err := gpuAvailable(); errors.Is(err, cuda.ErrLibraryNotFound) {
					t.Skipf("no GPU library on this machine, determinism on the GPU not checked: %v", err)
				} else if err != nil {
					t.Fatalf("GPU libraries present but unusable: %v", err)
				}
			}
			checkDeterminism(t, device)
		})
	}
}

func checkDeterminism(t *testing.T, device string) {
	const n, d = 2000, 32
	spec := scorertest.Spec(n, d, 8)
	dir8 := scorertest.WriteModel(t, spec)
	spec3 := spec
	spec3.Steps = 3
	spec3.Version = "steps3"
	dir3 := scorertest.WriteModel(t, spec3)
	specB := spec
	specB.Batch = 4
	specB.Version = "batch4"
	dirB := scorertest.WriteModel(t, specB)

	r := rand.New(rand.NewPCG(31, 32))
	var evs []testEvent
	ts := map[string]int64{}
	for i := range 900 {
		u := fmt.Sprintf("user-%02d", r.IntN(45))
		if _, ok := ts[u]; !ok {
			ts[u] = 1_700_000_000_000 + int64(r.IntN(1e9))
		}
		ts[u] += int64(r.IntN(7_200_000)) - 600_000 // sometimes out of order
		item := fmt.Sprintf("i%04d", r.IntN(n))
		typ := uint8(r.IntN(5))
		if r.IntN(20) == 0 {
			item = "unknown-" + item
		}
		if typ == typeSearch {
			item = ""
		}
		evs = append(evs, testEvent{user: u, item: item, typ: typ, ts: ts[u], partition: 0, offset: int64(i)})
	}

	type variant struct {
		name   string
		cfg    Config
		splits func(n int) []int // batch sizes
	}
	one := func(n int) []int { return []int{n} }
	random := func(seed uint64, maxSize int) func(int) []int {
		return func(n int) []int {
			r := rand.New(rand.NewPCG(seed, seed))
			var sizes []int
			for n > 0 {
				s := min(n, 1+r.IntN(maxSize))
				sizes = append(sizes, s)
				n -= s
			}
			return sizes
		}
	}
	variants := []variant{
		{"one batch", Config{ModelDir: dir8}, one},
		{"batches of 1..60, runs of 1 user", Config{ModelDir: dir8, BatchUsers: 1}, random(1, 60)},
		{"batches of 1..300, runs of 7 users", Config{ModelDir: dir8, BatchUsers: 7}, random(2, 300)},
		{"single events, one thread", Config{ModelDir: dir8, IntraOpThreads: 1}, random(3, 1)},
		{"L=3 model, batches of 1..90", Config{ModelDir: dir3, BatchUsers: 5}, random(4, 90)},
		{"L=8 model with a fixed B=4, batches of 1..40", Config{ModelDir: dirB}, random(5, 40)},
	}
	type result struct {
		states map[string]state.UserState
		last   map[string]schemas.Recommendation
	}
	results := make([]result, len(variants))
	for vi, v := range variants {
		v.cfg.Device = device
		s := newTestScorer(t, v.cfg)
		if s.Device() != device {
			t.Fatalf("%s: scored on %s, want %s", v.name, s.Device(), device)
		}
		// Padding runs to the graph's fixed B is ONNX Runtime's concern; the
		// GPU path updates states in Go and has no fixed B.
		if device == DeviceCPU && v.cfg.ModelDir == dirB && (!s.eng.Load().fixedBatch || s.eng.Load().batch != 4) {
			t.Fatalf("fixed-B model: fixed=%v users per run %d, want runs padded to 4", s.eng.Load().fixedBatch, s.eng.Load().batch)
		}
		res := result{states: map[string]state.UserState{}, last: map[string]schemas.Recommendation{}}
		start := 0
		for _, size := range v.splits(len(evs)) {
			for _, rec := range score(t, s, evs[start:start+size]) {
				if prev, ok := res.last[rec.UserID]; ok && rec.Version <= prev.Version {
					t.Fatalf("%s: version of %s went from %d to %d", v.name, rec.UserID, prev.Version, rec.Version)
				}
				res.last[rec.UserID] = rec
			}
			start += size
		}
		s.Store().Each(func(u state.UserState) bool {
			res.states[u.UserID] = u
			return true
		})
		results[vi] = res
	}
	base := results[0]
	if len(base.last) != 45 {
		t.Fatalf("%d users refreshed, want 45", len(base.last))
	}
	// The digest lets runs on other machines be compared with this one.
	h := sha256.New()
	for _, user := range slices.Sorted(maps.Keys(base.last)) {
		j, _ := json.Marshal(base.last[user])
		h.Write(j)
		for _, v := range base.states[user].State {
			h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
		}
	}
	t.Logf("digest of the final records and states: %x", h.Sum(nil)[:12])
	for vi, res := range results[1:] {
		name := variants[vi+1].name
		for user, want := range base.states {
			got := res.states[user]
			if len(got.State) != d {
				t.Fatalf("%s: no state for %s", name, user)
			}
			for j := range d {
				if math.Float32bits(got.State[j]) != math.Float32bits(want.State[j]) {
					t.Fatalf("%s: %s state[%d] = %x, one batch gave %x", name, user, j, math.Float32bits(got.State[j]), math.Float32bits(want.State[j]))
				}
			}
			if got.NewestTsMs != want.NewestTsMs || got.Offset != want.Offset || !slices.Equal(got.Bought, want.Bought) {
				t.Fatalf("%s: %s bookkeeping %+v, one batch gave %+v", name, user, got, want)
			}
			g, w := res.last[user], base.last[user]
			if strings.HasPrefix(name, "L=") { // another model: its version differs, nothing else may
				g.ModelVersion = w.ModelVersion
			}
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) {
				t.Fatalf("%s: last record of %s\n%s\none batch gave\n%s", name, user, gj, wj)
			}
			for j := range w.Scores {
				if math.Float32bits(g.Scores[j]) != math.Float32bits(w.Scores[j]) {
					t.Fatalf("%s: %s score %d differs in its bits", name, user, j)
				}
			}
		}
	}
}

func TestScorerSkipsReplayedEvents(t *testing.T) {
	spec := scorertest.Spec(60, 8, 9)
	dir := scorertest.WriteModel(t, spec)
	var evs []testEvent
	for i := range 15 {
		evs = append(evs, testEvent{user: fmt.Sprintf("u%d", i%3), item: fmt.Sprintf("i%04d", i*3), typ: typeView, ts: int64(1000 + i*60_000), partition: 4, offset: int64(i)})
	}
	once := newTestScorer(t, Config{ModelDir: dir})
	want := score(t, once, evs)

	s := newTestScorer(t, Config{ModelDir: dir})
	score(t, s, evs[:10])
	if recs := score(t, s, evs[:10]); len(recs) != 0 || s.Skipped() != 10 {
		t.Fatalf("replay of an applied batch gave %d records, skipped %d; want 0 and 10", len(recs), s.Skipped())
	}
	got := score(t, s, evs[5:]) // overlaps: 5..9 applied already
	if s.Skipped() != 15 {
		t.Fatalf("skipped %d, want 15", s.Skipped())
	}
	if len(got) != len(want) {
		t.Fatalf("%d records after the replay, %d in a single pass", len(got), len(want))
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(r schemas.Recommendation) bool { return r.UserID == w.UserID })
		if i < 0 {
			t.Fatalf("no record for %s after the replay", w.UserID)
		}
		gj, _ := json.Marshal(got[i])
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Fatalf("after replay:\n%s\nsingle pass:\n%s", gj, wj)
		}
	}
	// Another partition's offsets are not comparable: nothing is skipped.
	other := score(t, s, []testEvent{{user: "u0", item: "i0001", typ: typeView, ts: 2_000_000, partition: 5, offset: 1}})
	if len(other) != 1 || other[0].Partition != 5 {
		t.Fatalf("event of another partition: %+v", other)
	}
}

func TestScorerEvictsIdleUsers(t *testing.T) {
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, scorertest.Spec(10, 4, 10)), MaxUsers: 3})
	ev := func(u string, off int64) testEvent {
		return testEvent{user: u, item: "i0001", typ: typeView, ts: 1000, offset: off}
	}
	score(t, s, []testEvent{ev("a", 0), ev("b", 1), ev("c", 2)})
	score(t, s, []testEvent{ev("a", 3)}) // b is now the idlest
	score(t, s, []testEvent{ev("d", 4)})
	if s.Users() != 3 || s.Evictions() != 1 {
		t.Fatalf("users %d evictions %d, want 3 and 1", s.Users(), s.Evictions())
	}
	if _, ok := s.Store().Get("b"); ok {
		t.Fatal("b was idle longest and should have been evicted")
	}
	for _, u := range []string{"a", "c", "d"} {
		if _, ok := s.Store().Get(u); !ok {
			t.Fatalf("%s evicted instead of b", u)
		}
	}
	batch := makeBatch(t, []testEvent{ev("e", 5), ev("f", 6), ev("g", 7), ev("h", 8)})
	defer batch.Release()
	if _, err := s.Score(context.Background(), batch); err == nil || !strings.Contains(err.Error(), "max_users 3") {
		t.Fatalf("batch of 4 users with max_users 3: %v", err)
	}
}

func TestScorerTypeWeights(t *testing.T) {
	spec := scorertest.Spec(10, 4, 12)
	dir := scorertest.WriteModel(t, spec)
	plain := newTestScorer(t, Config{ModelDir: dir})
	if plain.ModelVersion() != spec.Version {
		t.Fatalf("model version %q, want %q when the weights are the model's", plain.ModelVersion(), spec.Version)
	}
	heavy := newTestScorer(t, Config{ModelDir: dir, TypeWeights: map[string]float32{"view": 3, "click": 0}})
	if !strings.HasPrefix(heavy.ModelVersion(), spec.Version+"+tw") {
		t.Fatalf("model version %q, want %q+tw<hash> with other weights", heavy.ModelVersion(), spec.Version)
	}
	recs := score(t, heavy, []testEvent{
		{user: "u", item: "i0002", typ: typeView, ts: 1000, offset: 0},
		{user: "u", item: "i0005", typ: typeClick, ts: 1000, offset: 1}, // weight 0
	})
	if recs[0].ModelVersion != heavy.ModelVersion() {
		t.Errorf("record model version %q", recs[0].ModelVersion)
	}
	u, _ := heavy.Store().Get("u")
	for j, v := range u.State {
		if want := spec.Embeddings[2][j] * 3; v != want {
			t.Fatalf("state[%d] = %g, want 3 x embedding = %g", j, v, want)
		}
	}
}

func TestScorerCancelledBatchChangesNothing(t *testing.T) {
	s := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, scorertest.Spec(10, 4, 13))})
	score(t, s, []testEvent{{user: "u", item: "i0001", typ: typeView, ts: 1000, offset: 0}})
	before, _ := s.Store().Get("u")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	batch := makeBatch(t, []testEvent{{user: "u", item: "i0002", typ: typePurchase, ts: 9000, offset: 1}})
	defer batch.Release()
	if _, err := s.Score(ctx, batch); !errors.Is(err, context.Canceled) {
		t.Fatalf("score with a cancelled context: %v", err)
	}
	after, _ := s.Store().Get("u")
	if !slices.Equal(before.State, after.State) || after.Offset != 0 || len(after.Bought) != 0 {
		t.Fatalf("a failed batch changed the state: %+v -> %+v", before, after)
	}
	empty := makeBatch(t, nil)
	defer empty.Release()
	out, err := s.Score(context.Background(), empty)
	if err != nil || out.Recs.NumRows() != 0 {
		t.Fatalf("empty batch: %v", err)
	}
	out.Release()
}

func TestScorerRefusesModelMismatch(t *testing.T) {
	dir := scorertest.WriteModel(t, scorertest.Spec(10, 4, 14))
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Recommender: RecommenderModel, ModelDir: dir, StepsPerRound: 4}, "steps_per_round: 4, but the model has a fixed L=8"},
		{Config{Recommender: RecommenderModel, ModelDir: dir, TopK: 50}, "top_k: 50, but the model returns K=11"},
		{Config{ModelDir: dir + "-missing"}, "no such file"},
	} {
		s, err := NewScorer(tc.cfg, nil)
		if err == nil {
			s.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewScorer(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestScorerBatchUsersDefault(t *testing.T) {
	small := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, scorertest.Spec(10, 2, 15))})
	big := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, scorertest.Spec(100_000, 2, 16))})
	set := newTestScorer(t, Config{ModelDir: scorertest.WriteModel(t, scorertest.Spec(100, 2, 17)), BatchUsers: 3000})
	// 64 MiB of float32 scores over 100,001 item indices is 167 users.
	if small.eng.Load().batch != 256 || big.eng.Load().batch != 167 || set.eng.Load().batch != 3000 {
		t.Fatalf("users per run: %d, %d, %d; want 256, 167 and the configured 3000", small.eng.Load().batch, big.eng.Load().batch, set.eng.Load().batch)
	}
}

// TestScorerIdleExpiry forgets users idle longer than idle_expiry (by event
// time): dropped from the store when the clock passes them, restarted cold
// when they come back, with the same records whatever the batch splits.
func TestScorerIdleExpiry(t *testing.T) {
	const hour = int64(3_600_000)
	dir := scorertest.WriteModel(t, scorertest.Spec(50, 8, 21))
	evs := []testEvent{
		{user: "a", item: "i0001", typ: typePurchase, ts: 0, offset: 0},
		{user: "b", item: "i0002", typ: typeView, ts: 10, offset: 1},
		{user: "c", item: "i0003", typ: typeView, ts: hour / 2, offset: 2},
		{user: "d", item: "i0004", typ: typeView, ts: 2 * hour, offset: 3}, // a and b are now idle > 1h
		{user: "a", item: "i0005", typ: typeClick, ts: 2*hour + 1, offset: 4},
		{user: "c", item: "i0006", typ: typeClick, ts: 2*hour + 2, offset: 5}, // c idle 1.5h: cold too
		{user: "d", item: "i0007", typ: typeClick, ts: 2*hour + 3, offset: 6}, // d is fresh: warm
	}
	type result struct {
		recs   map[string]string
		states map[string]state.UserState
		stats  ScorerStats
	}
	run := func(splits []int) result {
		s := newTestScorer(t, Config{ModelDir: dir, IdleExpiry: time.Hour})
		res := result{recs: map[string]string{}, states: map[string]state.UserState{}}
		start := 0
		for _, n := range splits {
			for _, rec := range score(t, s, evs[start:start+n]) {
				j, _ := json.Marshal(rec)
				res.recs[rec.UserID] = string(j)
			}
			start += n
		}
		s.Store().Each(func(u state.UserState) bool { res.states[u.UserID] = u; return true })
		res.stats = s.Stats()
		return res
	}
	one := run([]int{7})
	split := run([]int{3, 1, 3})
	singles := run([]int{1, 1, 1, 1, 1, 1, 1})

	// Fresh users fed only the events after the gap give the cold states.
	fresh := newTestScorer(t, Config{ModelDir: dir})
	score(t, fresh, []testEvent{evs[4], evs[5]})
	for _, u := range []string{"a", "c"} {
		want, _ := fresh.Store().Get(u)
		for name, res := range map[string]result{"one batch": one, "3+1+3": split, "singles": singles} {
			got := res.states[u]
			if !slices.Equal(got.State, want.State) || len(got.Bought) != 0 {
				t.Fatalf("%s: %s after an idle gap: state %v bought %v, want the cold start %v and nothing bought", name, u, got.State, got.Bought, want.State)
			}
		}
	}
	for name, res := range map[string]result{"3+1+3": split, "singles": singles} {
		for u, rec := range one.recs {
			if res.recs[u] != rec {
				t.Fatalf("%s: last record of %s\n%s\none batch gave\n%s", name, u, res.recs[u], rec)
			}
		}
	}
	// b never came back: dropped once the clock passed it (not in the one
	// batch run, where nothing was idle when the batch began).
	if _, ok := singles.states["b"]; ok || singles.stats.Users != 3 {
		t.Fatalf("singles: b kept (%v), %d users; want b dropped and 3 users", ok, singles.stats.Users)
	}
	// Expiries: a, b and c in the singles run (b dropped, a and c dropped
	// before returning); a and c restarted cold in the one batch run.
	if singles.stats.Expiries != 3 || one.stats.Expiries != 2 {
		t.Fatalf("expiries: singles %d, one batch %d; want 3 and 2", singles.stats.Expiries, one.stats.Expiries)
	}
	if d := one.states["d"]; d.NewestTsMs != 2*hour+3 || d.Offset != 6 {
		t.Fatalf("d: %+v", d)
	}
}
