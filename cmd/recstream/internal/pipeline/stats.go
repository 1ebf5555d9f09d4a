package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/recstream/recstream/schemas"
)

// Stats counts what the pipeline did. Safe for concurrent use: the loop
// writes it, the demo summary and the metrics endpoint read it.
type Stats struct {
	Batches            atomic.Uint64
	Records            atomic.Uint64 // input records, valid and dead-lettered
	EventsValid        atomic.Uint64
	DeadLetters        atomic.Uint64
	Refreshes          atomic.Uint64 // recommendation rows produced
	CommitFailures     atomic.Uint64
	ScoreNanos         atomic.Uint64
	WriteNanos         atomic.Uint64
	Checkpoints        atomic.Uint64
	CheckpointFailures atomic.Uint64
	// LastCheckpointUnixNano is when the last checkpoint was saved (0: none).
	LastCheckpointUnixNano atomic.Int64

	mu        sync.Mutex
	byReason  map[string]uint64
	retries   map[string]uint64
	sinkNanos map[string]uint64
	positions map[int32]int64
	sinkNames []string
	latency   *LatencyHistogram
	first     time.Time
	last      time.Time

	outages outages  // sinks being retried, failed writes (observer.go)
	live    liveness // Run going, batch in the scorer (observer.go)
}

func newStats(sinkNames []string) *Stats {
	return &Stats{
		byReason:  map[string]uint64{},
		retries:   map[string]uint64{},
		sinkNanos: map[string]uint64{},
		positions: map[int32]int64{},
		sinkNames: sinkNames,
		latency:   NewLatencyHistogram(),
	}
}

func (s *Stats) recordBatch(b *schemas.EventBatch, recs *schemas.RecommendationBatch, start, scored, writeStart, written, committed time.Time) {
	n := b.Events.NumRows()
	s.Batches.Add(1)
	s.Records.Add(uint64(b.Records))
	s.EventsValid.Add(uint64(n))
	s.DeadLetters.Add(uint64(len(b.DeadLetters)))
	s.Refreshes.Add(uint64(recs.Recs.NumRows()))
	s.ScoreNanos.Add(uint64(scored.Sub(start)))
	s.WriteNanos.Add(uint64(written.Sub(writeStart)))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first.IsZero() {
		s.first = b.FirstFetched
	}
	s.last = committed
	for _, dl := range b.DeadLetters {
		s.byReason[dl.Reason]++
	}
	for _, pos := range b.Commit {
		s.positions[int32(pos.Partition)] = pos.Offset
	}
	// Event-to-recommendation latency: from the moment each event entered
	// the input log to the moment its recommendation was durable in every
	// sink.
	if n > 0 {
		logTs := schemas.Rows(b.Events).LogTs
		ackMs := written.UnixMilli()
		for i := 0; i < int(n); i++ {
			s.latency.Record(time.Duration(ackMs-int64(logTs.Value(i))) * time.Millisecond)
		}
	}
}

func (s *Stats) recordSinkTime(sink string, d time.Duration) {
	s.mu.Lock()
	s.sinkNanos[sink] += uint64(d)
	s.mu.Unlock()
}

func (s *Stats) recordRetry(target string) {
	s.mu.Lock()
	s.retries[target]++
	s.mu.Unlock()
}

func (s *Stats) recordCommitFailure() { s.CommitFailures.Add(1) }

func (s *Stats) recordCheckpoint(at time.Time) {
	s.Checkpoints.Add(1)
	s.LastCheckpointUnixNano.Store(at.UnixNano())
}

func (s *Stats) recordCheckpointFailure() { s.CheckpointFailures.Add(1) }

// Snapshot is a point-in-time copy of Stats.
type Snapshot struct {
	Batches        uint64            `json:"batches"`
	Records        uint64            `json:"records"`
	EventsValid    uint64            `json:"events_valid"`
	DeadLetters    uint64            `json:"events_dlq"`
	DeadByReason   map[string]uint64 `json:"dlq_by_reason"`
	Refreshes      uint64            `json:"refreshes"`
	Retries        map[string]uint64 `json:"retries"`
	CommitFailures uint64            `json:"commit_failures"`
	ScoreSeconds   float64           `json:"score_seconds"`
	WriteSeconds   float64           `json:"write_seconds"`
	// SinkSeconds is the time spent writing to each sink (they write in
	// parallel, so WriteSeconds is about the slowest of them).
	SinkSeconds map[string]float64 `json:"sink_seconds"`
	// Positions is, per partition, the input position after the last batch
	// written and committed.
	Positions map[int32]int64 `json:"positions"`
	// Busy is the time from the first fetched record to the last commit.
	Busy       time.Duration `json:"-"`
	LatencyP50 time.Duration `json:"-"`
	LatencyP95 time.Duration `json:"-"`
	LatencyP99 time.Duration `json:"-"`
	LatencyMax time.Duration `json:"-"`
}

// Snapshot copies the statistics.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		Batches:        s.Batches.Load(),
		Records:        s.Records.Load(),
		EventsValid:    s.EventsValid.Load(),
		DeadLetters:    s.DeadLetters.Load(),
		DeadByReason:   make(map[string]uint64, len(s.byReason)),
		Refreshes:      s.Refreshes.Load(),
		Retries:        make(map[string]uint64, len(s.retries)),
		SinkSeconds:    make(map[string]float64, len(s.sinkNanos)),
		Positions:      make(map[int32]int64, len(s.positions)),
		CommitFailures: s.CommitFailures.Load(),
		ScoreSeconds:   float64(s.ScoreNanos.Load()) / 1e9,
		WriteSeconds:   float64(s.WriteNanos.Load()) / 1e9,
		LatencyP50:     s.latency.Quantile(0.50),
		LatencyP95:     s.latency.Quantile(0.95),
		LatencyP99:     s.latency.Quantile(0.99),
		LatencyMax:     s.latency.Max(),
	}
	for k, v := range s.byReason {
		snap.DeadByReason[k] = v
	}
	for k, v := range s.retries {
		snap.Retries[k] = v
	}
	for k, v := range s.positions {
		snap.Positions[k] = v
	}
	for k, v := range s.sinkNanos {
		snap.SinkSeconds[k] = float64(v) / 1e9
	}
	if !s.first.IsZero() {
		snap.Busy = s.last.Sub(s.first)
	}
	return snap
}
