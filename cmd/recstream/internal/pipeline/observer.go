package pipeline

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Observer receives per-batch measurements as they happen, for histograms
// (the metrics endpoint builds Prometheus histograms from them). It is
// called once per batch and once per sink write, never per event, from the
// pipeline's goroutines: implementations must be safe for concurrent use
// and must not block.
type Observer interface {
	// BatchDone is called once a batch is written to every sink and its
	// offsets committed.
	BatchDone(b BatchObservation)
	// SinkWritten is called when a sink (or the dead-letter topic, named
	// "dead_letters") has acknowledged a batch, or failed it for good
	// (err not nil). took includes the retries and their waits; attempts
	// counts the writes tried (1 when the first succeeded).
	SinkWritten(sink string, took time.Duration, attempts int, err error)
}

// BatchObservation describes one batch that went through every stage.
type BatchObservation struct {
	// Records counts the input records of the batch, valid and rejected.
	Records int
	// Events counts the valid events; DeadLetters the rejected records.
	Events, DeadLetters int
	// Recommendations counts the recommendation rows produced.
	Recommendations int
	// Score is the time the scorer took; Write the time until every sink
	// acknowledged (the slowest sink, retries included); Commit the time the
	// offset commit took.
	Score, Write, Commit time.Duration
}

// SetObserver makes the pipeline report every batch to o; call before Run.
func (p *Pipeline) SetObserver(o Observer) { p.obs = o }

// SinkOutage describes a sink the pipeline is retrying: consumption is
// paused until it takes the batch.
type SinkOutage struct {
	// Since is when the first failed write of the current batch returned.
	Since time.Time
	// Attempts counts the failed writes of the current batch so far.
	Attempts int
	// LastError is the last failure's message.
	LastError string
}

// outages tracks, per sink, whether the pipeline is retrying it, and counts
// every failed write. Safe for concurrent use.
type outages struct {
	mu      sync.Mutex
	current map[string]SinkOutage
	errors  map[string]uint64
}

func (o *outages) failed(sink string, err error, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current == nil {
		o.current, o.errors = map[string]SinkOutage{}, map[string]uint64{}
	}
	o.errors[sink]++
	cur, ok := o.current[sink]
	if !ok {
		cur.Since = at
	}
	cur.Attempts++
	cur.LastError = err.Error()
	o.current[sink] = cur
}

func (o *outages) ended(sink string) {
	o.mu.Lock()
	delete(o.current, sink)
	o.mu.Unlock()
}

// Outages returns the sinks being retried now, by name; empty when every
// sink took its last batch. Readiness probes report these.
func (s *Stats) Outages() map[string]SinkOutage {
	s.outages.mu.Lock()
	defer s.outages.mu.Unlock()
	return maps.Clone(s.outages.current)
}

// SinkErrors counts the failed writes per sink (the dead-letter topic as
// "dead_letters") since start, retried ones included.
func (s *Stats) SinkErrors() map[string]uint64 {
	s.outages.mu.Lock()
	defer s.outages.mu.Unlock()
	out := maps.Clone(s.outages.errors)
	if out == nil {
		out = map[string]uint64{}
	}
	return out
}

// liveness says whether Run is going and how long the scorer has held the
// current batch, for liveness probes.
type liveness struct {
	running      atomic.Bool
	scoringSince atomic.Int64 // UnixNano; 0 when not scoring
}

// Running reports whether Run has started and not yet returned.
func (s *Stats) Running() bool { return s.live.running.Load() }

// ScoringSince is when the scorer took the batch it is scoring now; zero
// when it is not scoring. A batch that stays long in the scorer means the
// process is stuck.
func (s *Stats) ScoringSince() time.Time {
	if ns := s.live.scoringSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// LatencyDistribution returns the event-to-recommendation latencies as
// cumulative counts at each of bounds (ascending): cum[i] counts the
// events whose latency was at most bounds[i], at millisecond resolution;
// count and sum cover every event. It reads the histogram the pipeline
// keeps anyway, so a scrape costs nothing on the hot path.
func (s *Stats) LatencyDistribution(bounds []time.Duration) (cum []uint64, count uint64, sum time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency.Cumulative(bounds), s.latency.Count(), s.latency.Sum()
}
