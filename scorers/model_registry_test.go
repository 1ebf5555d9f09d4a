package scorers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/state"
)

// swapEvents returns batches of events: batch i has users drawn from 40,
// one to three events each, offsets following on.
func swapEvents(batches, perBatch int, seed uint64) [][]testEvent {
	r := rand.New(rand.NewPCG(seed, seed))
	var out [][]testEvent
	off := int64(0)
	for range batches {
		var evs []testEvent
		for range perBatch {
			evs = append(evs, testEvent{user: fmt.Sprintf("u%02d", r.IntN(40)), item: fmt.Sprintf("i%04d", r.IntN(100)),
				typ: uint8(r.IntN(4)), ts: 1_000_000 + off*1000, partition: 1, offset: off})
			off++
		}
		out = append(out, evs)
	}
	return out
}

func distinctUsers(evs []testEvent) int {
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.user] = true
	}
	return len(seen)
}

// TestScorerHotSwapUnderLoad keeps batches flowing while CURRENT switches
// from v1 to v2: every batch is scored by one version, the records switch
// from v1 to v2 once and for all, every batch gets one record per user, and
// since v2 differs from v1 only in its prior (the state update is the
// same), the final states equal those of a scorer that never swapped: no
// event was dropped or applied twice.
func TestScorerHotSwapUnderLoad(t *testing.T) {
	spec := scorertest.Spec(100, 8, 31)
	v1, v2 := spec, spec
	v1.Version, v2.Version = "v1", "v2"
	v2.PriorWeight = 0.5
	r := scorertest.Registry(t, map[string]func(string) error{"v1": scorertest.TowerVersion(v1), "v2": scorertest.TowerVersion(v2)})
	if err := r.Activate("v1"); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	s, err := NewScorer(Config{Recommender: RecommenderModel, ModelsDir: r.Dir(), ReloadInterval: 10 * time.Millisecond}, zap.New(core))
	if err != nil {
		t.Fatalf("new scorer: %v", err)
	}
	defer s.Close()
	if s.ModelVersion() != "v1" {
		t.Fatalf("serving %q, want v1", s.ModelVersion())
	}

	// The batches flow on this goroutine, as in the pipeline; CURRENT
	// switches on another, and the scorer's watcher loads v2 on a third.
	batches := swapEvents(400, 30, 1)
	activated := make(chan error, 1)
	var versions []string
	records := 0
	for i, evs := range batches {
		if i == 20 {
			go func() { activated <- r.Activate("v2") }()
		}
		recs := score(t, s, evs)
		if len(recs) != distinctUsers(evs) {
			t.Fatalf("batch %d: %d records for %d users", i, len(recs), distinctUsers(evs))
		}
		for _, rec := range recs[1:] {
			if rec.ModelVersion != recs[0].ModelVersion {
				t.Fatalf("batch %d scored by two versions: %s and %s", i, recs[0].ModelVersion, rec.ModelVersion)
			}
		}
		records += len(recs)
		versions = append(versions, recs[0].ModelVersion)
		if i > 20 && i%10 == 0 && recs[0].ModelVersion == "v1" {
			time.Sleep(5 * time.Millisecond) // give the watcher a tick on a busy machine
		}
	}
	if err := <-activated; err != nil {
		t.Fatalf("activate v2: %v", err)
	}
	first := slices.Index(versions, "v2")
	if first < 20 || slices.Contains(versions[first:], "v1") || versions[0] != "v1" {
		t.Fatalf("versions by batch: v2 first at batch %d of %d; want v1 then v2 only, switching after batch 20: %v", first, len(versions), versions)
	}
	t.Logf("swapped at batch %d of %d (activated before batch 20), %d records", first, len(versions), records)
	if st := s.Stats(); st.ModelSwaps != 1 || st.ModelVersion != "v2" || st.ModelRefusals != 0 {
		t.Fatalf("stats %+v", st)
	}
	if logs.FilterMessage("model version swapped in").Len() != 1 || logs.FilterMessage("model version loaded; the next batch is scored by it").Len() != 1 {
		t.Fatalf("logs: %v", logs.All())
	}

	plain := newTestScorer(t, Config{ModelDir: filepath.Join(r.Dir(), "v1")})
	want := 0
	for _, evs := range batches {
		want += len(score(t, plain, evs))
	}
	if records != want {
		t.Fatalf("%d records with the swap, %d without", records, want)
	}
	plain.Store().Each(func(w state.UserState) bool {
		got, ok := s.Store().Get(w.UserID)
		if !ok || !slices.Equal(got.State, w.State) || got.Offset != w.Offset || !slices.Equal(got.Bought, w.Bought) {
			t.Fatalf("%s after the swap: %+v\nwithout: %+v", w.UserID, got, w)
		}
		return true
	})
}

// TestScorerRefusesBrokenVersion activates a version whose graph breaks the
// contract: it is refused and logged, the old version keeps serving, and a
// good version after it is taken.
func TestScorerRefusesBrokenVersion(t *testing.T) {
	spec := scorertest.Spec(20, 4, 32)
	v1, v3 := spec, spec
	v1.Version, v3.Version = "v1", "v3"
	r := scorertest.Registry(t, map[string]func(string) error{"v1": scorertest.TowerVersion(v1), "v2": scorertest.TowerVersion(spec), "v3": scorertest.TowerVersion(v3)})
	// v2's graph is replaced by one with a float32 item_history.
	broken := scorertest.CraftModelDir(t, []scorertest.ValueSpec{{Name: schemas.ModelInputItemHistory, Type: models.TensorFloat, Dims: []models.Dim{models.DimParam("B"), models.DimValue(2)}}},
		[]scorertest.ValueSpec{{Name: schemas.ModelOutputTopScores, Type: models.TensorFloat, Dims: []models.Dim{models.DimParam("B"), models.DimValue(2)}}}, []string{schemas.ModelInputItemHistory})
	data, _ := os.ReadFile(filepath.Join(broken, schemas.ModelFileONNX))
	if err := os.WriteFile(filepath.Join(r.Dir(), "v2", schemas.ModelFileONNX), data, 0o644); err != nil {
		t.Fatal(err)
	}
	meta := []byte(`{"version": "v2", "num_items": 20}`)
	if err := os.WriteFile(filepath.Join(r.Dir(), "v2", schemas.ModelFileMetadata), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Activate("v1"); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	s, err := NewScorer(Config{Recommender: RecommenderModel, ModelsDir: r.Dir(), ReloadInterval: -1}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reload(context.Background()); err != nil {
		t.Fatalf("reload of the serving version: %v", err)
	}
	if err := r.Activate("v2"); err != nil {
		t.Fatal(err)
	}
	err = s.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), `input "item_history" is a float32 tensor`) || !strings.Contains(err.Error(), "v2") {
		t.Fatalf("reload of a broken version = %v", err)
	}
	if logs.FilterMessage("model version refused; the old one keeps serving").Len() != 1 {
		t.Fatalf("refusal not logged: %v", logs.All())
	}
	recs := score(t, s, []testEvent{{user: "u", item: "i0001", typ: typeView, ts: 1, offset: 0}})
	if recs[0].ModelVersion != "v1" || s.Stats().ModelRefusals != 1 {
		t.Fatalf("after the refusal: record of %s, %d refusals", recs[0].ModelVersion, s.Stats().ModelRefusals)
	}
	if err := r.Activate("v3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs = score(t, s, []testEvent{{user: "u", item: "i0002", typ: typeView, ts: 2, offset: 1}}); recs[0].ModelVersion != "v3" {
		t.Fatalf("after activating v3: %s", recs[0].ModelVersion)
	}

	fixed := newTestScorer(t, Config{ModelDir: filepath.Join(r.Dir(), "v1")})
	if err := fixed.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "models_dir") {
		t.Fatalf("Reload with a model_dir = %v", err)
	}
}

// TestScorerSwapsAcrossContracts swaps a stateful model for a sequence one
// and back, and for one with other items: users restart cold when the
// contract or width changes, and keep their clock, position and bought
// items (by item id) throughout.
func TestScorerSwapsAcrossContracts(t *testing.T) {
	tower := scorertest.Spec(30, 8, 33)
	tower.Version = "tower-d8"
	wide := scorertest.Spec(30, 16, 34)
	wide.Version = "tower-d16"
	seq := scorertest.SequenceSpec(30, 8, 35, 4, false)
	seq.Version = "seq-h4"
	// The same items in reverse order: every index changes.
	shuffled := scorertest.Spec(30, 16, 36)
	shuffled.Version = "tower-d16-reversed"
	slices.Reverse(shuffled.Items)
	r := scorertest.Registry(t, map[string]func(string) error{
		"a": scorertest.TowerVersion(tower), "b": scorertest.SequenceVersion(seq), "c": scorertest.TowerVersion(wide), "d": scorertest.TowerVersion(shuffled),
	})
	if err := r.Activate("a"); err != nil {
		t.Fatal(err)
	}
	s := newTestScorer(t, Config{ModelsDir: r.Dir(), ReloadInterval: -1})
	activate := func(v string) {
		t.Helper()
		if err := r.Activate(v); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	score(t, s, []testEvent{
		{user: "u", item: "i0003", typ: typePurchase, ts: 1000, offset: 0},
		{user: "u", item: "i0004", typ: typeView, ts: 2000, offset: 1},
	})

	activate("b") // stateful -> sequence: cold
	recs := score(t, s, []testEvent{
		{user: "u", item: "i0004", typ: typeView, ts: 2000, offset: 1}, // replayed: skipped
		{user: "u", item: "i0005", typ: typeClick, ts: 3000, offset: 2},
	})
	u, _ := s.Store().Get("u")
	if recs[0].ModelVersion != "seq-h4" || !slices.Equal(u.History, []int32{6}) || u.State != nil || u.Offset != 2 ||
		!slices.Equal(u.Bought, []int32{4}) || s.Skipped() != 1 {
		t.Fatalf("after the swap to a sequence model: record %s, user %+v, skipped %d", recs[0].ModelVersion, u, s.Skipped())
	}
	if slices.Contains(recs[0].Items, "i0003") {
		t.Fatalf("bought item recommended after the swap: %v", recs[0].Items)
	}

	activate("c") // sequence -> stateful D=16: cold
	score(t, s, []testEvent{{user: "u", item: "i0006", typ: typeView, ts: 4000, offset: 3}})
	fresh := newTestScorer(t, Config{ModelDir: filepath.Join(r.Dir(), "c")})
	score(t, fresh, []testEvent{{user: "u", item: "i0006", typ: typeView, ts: 4000, offset: 3}})
	u, _ = s.Store().Get("u")
	want, _ := fresh.Store().Get("u")
	if !slices.Equal(u.State, want.State) || u.History != nil || !slices.Equal(u.Bought, []int32{4}) {
		t.Fatalf("after the swap to D=16: %+v, want state %v", u, want.State)
	}

	activate("d") // same contract and D, items reversed: state kept, bought remapped
	before := u.State
	recs = score(t, s, []testEvent{{user: "u", item: "unknown", typ: typeView, ts: 4000, offset: 4}})
	u, _ = s.Store().Get("u")
	if !slices.Equal(u.State, before) || !slices.Equal(u.Bought, []int32{s.Model().ItemIndex("i0003")}) || u.Bought[0] == 4 {
		t.Fatalf("after the swap to reversed items: %+v (state before %v)", u, before)
	}
	if slices.Contains(recs[0].Items, "i0003") {
		t.Fatalf("bought item recommended after the remap: %v", recs[0].Items)
	}
	if st := s.Stats(); st.ModelSwaps != 3 || st.ModelVersion != "tower-d16-reversed" {
		t.Fatalf("stats %+v", st)
	}
}

func TestScorerConfigModelsDir(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ModelDir: "a", ModelsDir: "b"}, "set exactly one of them"},
		{Config{ModelsDir: "b", ReloadInterval: time.Millisecond}, "reload_interval: must be >= 10ms"},
		{Config{ModelDir: "a", Device: "tpu"}, `device: must be auto, cpu or cuda, got "tpu"`},
		{Config{ModelDir: "a", HistoryLen: -1}, "history_len: must be in"},
		{Config{ModelDir: "a", IdleExpiry: -time.Second}, "idle_expiry: must be >= 0"},
	} {
		if err := tc.cfg.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{ModelsDir: "m"}.WithDefaults()
	if c.ReloadInterval != 5*time.Second || c.Device != DeviceAuto || c.Validate() != nil {
		t.Fatalf("defaults: %+v", c)
	}
	dir := t.TempDir()
	if _, err := NewScorer(Config{Recommender: RecommenderModel, ModelsDir: dir}, nil); err == nil || !errors.Is(err, models.ErrNoCurrentVersion) || !strings.Contains(err.Error(), "models_dir") {
		t.Fatalf("NewScorer with an empty models dir = %v", err)
	}
}

// TestScorerWatcherRetriesRefusedVersionOnlyWhenActivatedAgain: the
// watcher refuses a broken version once (no retry every tick), and takes
// it when it is fixed and activated again.
func TestScorerWatcherRetriesRefusedVersionOnlyWhenActivatedAgain(t *testing.T) {
	good := scorertest.Spec(20, 4, 37)
	good.Version = "v1"
	r := scorertest.Registry(t, map[string]func(string) error{"v1": scorertest.TowerVersion(good)})
	if err := r.Activate("v1"); err != nil {
		t.Fatal(err)
	}
	s := newTestScorer(t, Config{ModelsDir: r.Dir(), ReloadInterval: 10 * time.Millisecond})
	// v2: a model directory whose graph is garbage.
	v2 := filepath.Join(r.Dir(), "v2")
	if err := os.Mkdir(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		schemas.ModelFileONNX: "garbage", schemas.ModelFileItems: "a\n", schemas.ModelFileMetadata: `{"version": "v2"}`,
	} {
		if err := os.WriteFile(filepath.Join(v2, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Activate("v2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal of v2", func() bool { return s.Stats().ModelRefusals == 1 })
	time.Sleep(100 * time.Millisecond) // ten more ticks
	if n := s.Stats().ModelRefusals; n != 1 || s.ModelVersion() != "v1" {
		t.Fatalf("%d refusals, serving %s; want one refusal and v1 serving on", n, s.ModelVersion())
	}
	// Fix v2 in place and activate it again.
	fixed := scorertest.Spec(20, 4, 38)
	fixed.Version = "v2"
	tmp := filepath.Join(t.TempDir(), "v2")
	if err := models.WriteModelDir(tmp, fixed); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{schemas.ModelFileONNX, schemas.ModelFileItems, schemas.ModelFileMetadata} {
		data, _ := os.ReadFile(filepath.Join(tmp, name))
		if err := os.WriteFile(filepath.Join(v2, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond) // a CURRENT written in the same clock tick would look unchanged
	if err := r.Activate("v2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v2 to be loaded", func() bool {
		return score(t, s, []testEvent{{user: "u", item: "i0001", typ: typeView, ts: 1, offset: 0}}) != nil && s.ModelVersion() == "v2"
	})
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
