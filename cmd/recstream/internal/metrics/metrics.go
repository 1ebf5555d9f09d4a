// Package metrics is recstream's operations endpoint: Prometheus metrics on
// a private registry, and the liveness and readiness probes.
//
// Counters are not counted twice: Collector reads the pipeline's Stats, the
// consumer's and the scorer's counters when Prometheus scrapes, so the hot
// path pays nothing for them. Only the histograms of per-batch durations
// and sizes are fed as batches complete (Metrics implements
// pipeline.Observer, called once per batch, never per event); the
// event-to-recommendation latency histogram is built at scrape time from
// the one the pipeline keeps.
//
// Files: metrics.go (the registry and the histograms), collector.go (the
// scrape-time collector and every metric name), lag_monitor.go (partition
// end offsets for consumer lag), health.go (probes), http_server.go
// (/metrics, /healthz, /readyz).
package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/consumers"
)

// Namespace prefixes every metric recstream exports.
const Namespace = "recstream"

// ConsumerSource is what the metrics read of the input consumer
// (*consumers.Consumer implements it).
type ConsumerSource interface {
	Stats() consumers.ConsumerStats
	Topic() string
}

// ScorerStats are the scorer's counters the metrics export. The wiring
// copies them from scorers.ScorerStats, so that this package does not
// depend on the scorer's runtime.
type ScorerStats struct {
	// ModelVersion and Device label recstream_scorer_model_info.
	ModelVersion, Device string
	// Users is the number of users whose state is kept.
	Users int
	// Evictions, Expiries and Skipped count users evicted for max_users,
	// users forgotten for idleness, and events skipped as already applied.
	Evictions, Expiries, Skipped uint64
	// ModelSwaps and ModelRefusals count model versions swapped in and
	// refused since start.
	ModelSwaps, ModelRefusals uint64
}

// Sources are the running components whose counters are read at scrape
// time. A nil field exports nothing for that component: the metrics server
// starts before the pipeline is built, and a scrape then shows the process
// metrics alone.
type Sources struct {
	// Pipeline is the pipeline's live statistics.
	Pipeline *pipeline.Stats
	// SinkNames are the pipeline's sinks, so that per-sink series exist
	// (at zero) before the first failure.
	SinkNames []string
	// Consumer is the input consumer.
	Consumer ConsumerSource
	// Scorer returns the scorer's counters.
	Scorer func() ScorerStats
	// Lag is the end-offset monitor of the input topic (nil: no lag
	// metrics).
	Lag *LagMonitor
	// CheckpointsEnabled exports checkpoint metrics even before the first
	// checkpoint.
	CheckpointsEnabled bool
}

// Bucket bounds of the histograms.
var (
	// DurationBuckets (seconds) cover a fast batch (1 ms) to a sink outage
	// that held a batch for minutes.
	DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	// LatencyBuckets (seconds) of event-to-recommendation latency, at the
	// millisecond resolution of the pipeline's histogram.
	LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// BatchRecordBuckets count input records per batch.
	BatchRecordBuckets = []float64{1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000}
)

// Metrics owns the private registry: recstream never touches Prometheus'
// global default registry, so two pipelines in one process (tests) do not
// collide. Create it with New, Attach the components once they run, and
// give Observer to the pipeline. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	src atomic.Pointer[Sources]

	batchRecords *prometheus.HistogramVec // by kind: records, events, dead_letters, recommendations
	stage        *prometheus.HistogramVec // by stage: score, write, commit
	sinkWrite    *prometheus.HistogramVec // by sink
	sinkAttempts *prometheus.CounterVec   // by sink
}

// New returns Metrics with every collector registered: the Go runtime and
// process collectors, the histograms, the scrape-time collector of Sources
// (empty until Attach) and health's readiness and liveness (nil: not
// exported).
func New(health *Health) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.batchRecords = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "batch_size",
		Help:    "Rows per batch: input records (valid and rejected), valid events, dead letters, recommendations.",
		Buckets: BatchRecordBuckets,
	}, []string{"kind"})
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "stage_duration_seconds",
		Help:    "Time a batch spent in each stage: score (the scorer), write (until every sink acknowledged, retries included), commit (the offset commit).",
		Buckets: DurationBuckets,
	}, []string{"stage"})
	m.sinkWrite = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "sink_write_duration_seconds",
		Help:    "Time until a sink acknowledged a batch, retries and their waits included.",
		Buckets: DurationBuckets,
	}, []string{"sink"})
	m.sinkAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "sink_write_attempts_total",
		Help: "Writes tried per sink: one per batch plus one per retry.",
	}, []string{"sink"})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.batchRecords, m.stage, m.sinkWrite, m.sinkAttempts,
		&collector{m: m, health: health},
	)
	return m
}

// Registry is the private registry, for the HTTP handler and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Attach makes the collector read src from the next scrape on.
func (m *Metrics) Attach(src Sources) {
	for _, name := range src.SinkNames {
		m.sinkWrite.WithLabelValues(name)
		m.sinkAttempts.WithLabelValues(name)
	}
	m.src.Store(&src)
}

// BatchDone implements pipeline.Observer.
func (m *Metrics) BatchDone(b pipeline.BatchObservation) {
	m.batchRecords.WithLabelValues("records").Observe(float64(b.Records))
	m.batchRecords.WithLabelValues("events").Observe(float64(b.Events))
	m.batchRecords.WithLabelValues("dead_letters").Observe(float64(b.DeadLetters))
	m.batchRecords.WithLabelValues("recommendations").Observe(float64(b.Recommendations))
	m.stage.WithLabelValues("score").Observe(b.Score.Seconds())
	m.stage.WithLabelValues("write").Observe(b.Write.Seconds())
	m.stage.WithLabelValues("commit").Observe(b.Commit.Seconds())
}

// SinkWritten implements pipeline.Observer.
func (m *Metrics) SinkWritten(sink string, took time.Duration, attempts int, _ error) {
	m.sinkWrite.WithLabelValues(sink).Observe(took.Seconds())
	m.sinkAttempts.WithLabelValues(sink).Add(float64(attempts))
}

var _ pipeline.Observer = (*Metrics)(nil)
