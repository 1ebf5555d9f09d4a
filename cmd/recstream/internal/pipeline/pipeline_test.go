package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/sinks"
)

// The loop's own failure handling is tested here with small in-memory
// stand-ins for its three neighbours; every neighbour is tested against the
// real thing in its package, and the whole pipeline in cmd/recstream.

// stallingSource yields n empty batches, then blocks until ctx ends, as a
// consumer does when no input arrives.
type stallingSource struct {
	n         int
	committed atomic.Int64
}

func (s *stallingSource) Next(ctx context.Context) (*schemas.EventBatch, error) {
	if s.n == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.n--
	b := schemas.NewEventBuilder(nil)
	defer b.Release()
	return &schemas.EventBatch{Events: b.NewRecord(), Commit: []schemas.PartitionOffset{{Partition: 0, Offset: int64(10 - s.n)}}}, nil
}

func (s *stallingSource) Commit(_ context.Context, pos []schemas.PartitionOffset) error {
	s.committed.Add(int64(len(pos)))
	return nil
}

type emptyScorer struct{}

func (emptyScorer) Score(context.Context, *schemas.EventBatch) (*schemas.RecommendationBatch, error) {
	b := schemas.NewRecommendationBuilder(nil)
	defer b.Release()
	return &schemas.RecommendationBatch{Recs: b.NewRecord()}, nil
}

// failingSink fails every write with err after ok successful writes.
type failingSink struct {
	ok     int
	err    error
	writes atomic.Int64
}

func (s *failingSink) Write(context.Context, *schemas.EventBatch, *schemas.RecommendationBatch) error {
	if int(s.writes.Add(1)) > s.ok {
		return s.err
	}
	return nil
}

func TestRunStopsOnAFatalSinkErrorWithoutCommitting(t *testing.T) {
	src := &stallingSource{n: 3}
	sink := &failingSink{ok: 1, err: errors.New("table has no such column")}
	p := New(Config{}, src, emptyScorer{}, nil, []NamedSink{{Name: "ch", Sink: sink}}, zaptest.NewLogger(t))
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, sink.err) {
			t.Fatalf("Run = %v, want the sink's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a fatal sink error (the scoring goroutine is stuck waiting for input)")
	}
	if got := src.committed.Load(); got != 1 {
		t.Fatalf("committed %d batches, want only the 1 written before the failure", got)
	}
}

func TestRunRetriesAnUnavailableSinkUntilItRecovers(t *testing.T) {
	src := &stallingSource{n: 2}
	unavailable := fmt.Errorf("dial: %w", sinks.ErrUnavailable)
	sink := &recoveringSink{failures: 3, err: unavailable}
	p := New(Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, src, emptyScorer{}, nil,
		[]NamedSink{{Name: "ch", Sink: sink}}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for src.committed.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if src.committed.Load() != 2 {
		t.Fatalf("committed %d batches, want 2 once the sink recovered", src.committed.Load())
	}
	if got := p.Stats().Snapshot().Retries["ch"]; got != 3 {
		t.Fatalf("retries = %d, want 3", got)
	}
}

// recoveringSink fails its first failures writes with err, then succeeds.
type recoveringSink struct {
	failures int
	err      error
	calls    atomic.Int64
}

func (s *recoveringSink) Write(context.Context, *schemas.EventBatch, *schemas.RecommendationBatch) error {
	if int(s.calls.Add(1)) <= s.failures {
		return s.err
	}
	return nil
}

// partitionSource yields one empty batch per entry of commits, then blocks
// until ctx ends.
type partitionSource struct {
	commits [][]schemas.PartitionOffset
	taken   atomic.Int64
}

func (s *partitionSource) Next(ctx context.Context) (*schemas.EventBatch, error) {
	i := int(s.taken.Load())
	if i == len(s.commits) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.taken.Add(1)
	b := schemas.NewEventBuilder(nil)
	defer b.Release()
	return &schemas.EventBatch{Events: b.NewRecord(), Commit: s.commits[i]}, nil
}

func (s *partitionSource) Commit(context.Context, []schemas.PartitionOffset) error { return nil }

// recordingCheckpointer captures a checkpoint after every batch and keeps
// the positions of each save, in order.
type recordingCheckpointer struct {
	mu    sync.Mutex
	saved []map[int32]int64
}

func (c *recordingCheckpointer) Capture(positions map[int32]int64) PendingCheckpoint {
	return recordedSave{c: c, positions: maps.Clone(positions)}
}

func (c *recordingCheckpointer) saves() []map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.saved)
}

type recordedSave struct {
	c         *recordingCheckpointer
	positions map[int32]int64
}

func (s recordedSave) Save(context.Context) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.saved = append(s.c.saved, s.positions)
	return nil
}

// TestCheckpointsNameEveryPartitionOfTheRestoredState: the state was
// restored from a checkpoint of four partitions and the first batches after
// the restart hold only some of them. Every checkpoint must still name all
// four, the partitions not read yet at the restored position: a checkpoint
// that named only the partitions read since the restart (the kill -9 drill
// found generations of one partition) sent the next restart to replay the
// others from their start, and past records the broker had deleted.
func TestCheckpointsNameEveryPartitionOfTheRestoredState(t *testing.T) {
	restored := map[int32]int64{0: 443, 1: 441, 2: 500, 3: 616}
	src := &partitionSource{commits: [][]schemas.PartitionOffset{
		{{Partition: 3, Offset: 1116}},
		{{Partition: 1, Offset: 700}, {Partition: 3, Offset: 1200}},
	}}
	ckpt := &recordingCheckpointer{}
	p := New(Config{}, src, emptyScorer{}, nil, []NamedSink{{Name: "ch", Sink: &failingSink{ok: 1 << 30}}}, zaptest.NewLogger(t))
	p.SetCheckpointer(ckpt, restored)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(ckpt.saves()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []map[int32]int64{
		{0: 443, 1: 441, 2: 500, 3: 1116},
		{0: 443, 1: 700, 2: 500, 3: 1200},
		{0: 443, 1: 700, 2: 500, 3: 1200}, // the final checkpoint of the soft stop
	}
	got := ckpt.saves()
	if len(got) != len(want) {
		t.Fatalf("saved %d checkpoints %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("checkpoint %d names positions %v, want %v", i+1, got[i], want[i])
		}
	}
}
