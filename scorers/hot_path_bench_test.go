package scorers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/internal/scorertest"
	"github.com/recstream/recstream/scorers/state"
)

// Benchmarks of the scorer's per-user hot functions, the Go-side work
// around each session run. They report allocations per user: once warm,
// the hot path should allocate close to nothing per user.

// hotPathUsers is the users per batch of these benchmarks: one session run
// on CPU (DefaultBatchUsers).
const hotPathUsers = DefaultBatchUsers

// BenchmarkStateGatherScatter copies the states (D=64) of 256 users out of
// a store of 100,000 users into the run's buffer and back, as every batch
// does around its session runs. One op is one batch of 256 users.
func BenchmarkStateGatherScatter(b *testing.B) {
	const stored = 100_000
	store, err := state.NewVectorStore(benchDim, DefaultMaxExclude, stored)
	if err != nil {
		b.Fatal(err)
	}
	vec := make([]float32, benchDim)
	for i := range stored {
		vec[0] = float32(i)
		if err := store.Put(state.UserState{UserID: fmt.Sprintf("u%06d", i), State: vec, Offset: -1}); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	slots := make([]int32, hotPathUsers)
	for i := range slots {
		slots[i] = store.Lookup(fmt.Sprintf("u%06d", r.IntN(stored)))
	}
	work := make([]float32, hotPathUsers*benchDim)
	op := func() {
		store.Gather(slots, work)
		store.Scatter(slots, work)
	}
	allocs := testing.AllocsPerRun(100, op)
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
	// After the loop: b.Loop resets the metrics reported before it.
	b.ReportMetric(allocs/hotPathUsers, "allocs/user")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*hotPathUsers), "ns/user")
}

// BenchmarkTopKRecords measures turning the model's top-K output of a
// batch of 256 users (one event each) into recommendation records: the
// masked-score and bought-item filter, item index to id, and the Arrow
// record of the batch. One op is one batch.
func BenchmarkTopKRecords(b *testing.B) {
	dir := scorertest.WriteModel(b, scorertest.Spec(benchItems, benchDim, 1))
	s, err := NewScorer(Config{Recommender: RecommenderModel, ModelDir: dir, Device: DeviceCPU}, nil)
	if err != nil {
		b.Fatalf("new scorer (run make setup): %v", err)
	}
	defer s.Close()
	evs := make([]testEvent, hotPathUsers)
	for i := range evs {
		evs[i] = testEvent{user: fmt.Sprintf("user-%06d", i), item: fmt.Sprintf("i%04d", i%benchItems), typ: uint8(i % 4),
			ts: 1_700_000_000_000 + int64(i), offset: int64(i)}
	}
	batch := makeBatch(b, evs)
	defer batch.Release()
	// One Score fills the scratch (active users, their top-K) that
	// buildRecords reads.
	out, err := s.Score(context.Background(), batch)
	if err != nil {
		b.Fatal(err)
	}
	out.Release()
	e, rows := s.eng.Load(), schemas.Rows(batch.Events)
	op := func() { s.buildRecords(e, rows).Release() }
	allocs := testing.AllocsPerRun(20, op)
	b.ReportAllocs()
	for b.Loop() {
		op()
	}
	b.ReportMetric(allocs/hotPathUsers, "allocs/user")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*hotPathUsers), "ns/user")
}
