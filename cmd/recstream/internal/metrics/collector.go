package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// desc builds the descriptor of a recstream metric.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// Every metric the scrape-time collector exports. The Grafana dashboard
// (deploy/grafana/recstream-dashboard.json) uses these names.
var (
	descInputRecords    = desc("input_records_total", "Input records taken by the pipeline, valid and rejected (events in).")
	descEventsValid     = desc("events_valid_total", "Valid input events applied to user state.")
	descDeadLetters     = desc("dead_letters_total", "Input records rejected to the dead-letter topic, by reason.", "reason")
	descRecommendations = desc("recommendations_total", "Recommendation rows produced: user refreshes written to every sink (events out).")
	descBatches         = desc("batches_total", "Batches written to every sink and committed.")
	descSinkRetries     = desc("sink_retries_total", "Writes retried because a sink (or the dead-letter topic) was unavailable, by sink.", "sink")
	descSinkErrors      = desc("sink_errors_total", "Failed writes by sink, retried or fatal.", "sink")
	descSinkUnavailable = desc("sink_unavailable", "1 while the pipeline retries a sink (consumption is paused), else 0.", "sink")
	descSinkOutage      = desc("sink_unavailable_seconds", "How long the current outage of a sink has lasted; 0 when it takes writes.", "sink")
	descCommitFailures  = desc("commit_failures_total", "Offset commits that failed (the batch is re-read after a restart).")
	descCheckpoints     = desc("checkpoints_total", "State checkpoints saved.")
	descCheckpointFails = desc("checkpoint_failures_total", "State checkpoints that failed.")
	descCheckpointAge   = desc("checkpoint_age_seconds", "Time since the last checkpoint was saved by this process.")
	descCheckpointLast  = desc("checkpoint_last_success_timestamp_seconds", "Unix time of the last checkpoint saved by this process.")
	descLatency         = desc("event_to_recommendation_seconds", "Time from an event's arrival in the input log to its recommendation being durable in every sink (millisecond resolution).")
	descRunning         = desc("pipeline_running", "1 while the pipeline loop runs.")

	descPartitions    = desc("consumer_assigned_partitions", "Input partitions assigned to this instance.")
	descGeneration    = desc("consumer_generation", "Current consumer group generation (0 between generations).")
	descBuffered      = desc("consumer_buffered_batches", "Complete batches waiting for the pipeline (back-pressure holds it at max_buffered_batches).")
	descPartial       = desc("consumer_partial_records", "Records in the batch being built.")
	descTruncated     = desc("consumer_truncated_records_total", "Input records the broker deleted (retention) before they were read: lost outside recstream; alert on any increase.")
	descLag           = desc("consumer_lag_records", "Records in a partition past the group's committed offset (end offset minus committed).", "topic", "partition")
	descUnread        = desc("consumer_unread_records", "Records in a partition past what the consumer delivered (end offset minus delivered).", "topic", "partition")
	descEndOffset     = desc("consumer_end_offset", "End offset (high watermark) of an assigned partition, as last listed.", "topic", "partition")
	descCommitted     = desc("consumer_committed_offset", "Committed offset of an assigned partition.", "topic", "partition")
	descLagAge        = desc("consumer_end_offsets_age_seconds", "Age of the end offsets the lag is computed from.")
	descLagErrors     = desc("consumer_end_offsets_errors_total", "Failed listings of the input's end offsets.")
	descScorerUsers   = desc("scorer_users", "Users whose state is kept (state size).")
	descEvictions     = desc("scorer_evictions_total", "Users evicted from state to respect max_users.")
	descExpiries      = desc("scorer_expiries_total", "Users forgotten for being idle longer than idle_expiry.")
	descSkipped       = desc("scorer_skipped_events_total", "Events not applied because the user's state already reflected them (a replay after a restore).")
	descModelSwaps    = desc("scorer_model_swaps_total", "Model versions swapped in since start.")
	descModelRefusals = desc("scorer_model_refusals_total", "Model versions refused (failed to load or check).")
	descModelInfo     = desc("scorer_model_info", "The serving model: always 1, labelled with its version and device.", "model_version", "device")
	descReady         = desc("ready", "1 when /readyz answers ready.")
	descLive          = desc("live", "1 when /healthz answers live.")
)

// collector exports Sources' counters at scrape time.
type collector struct {
	m      *Metrics
	health *Health
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descInputRecords, descEventsValid, descDeadLetters, descRecommendations, descBatches, descSinkRetries,
		descSinkErrors, descSinkUnavailable, descSinkOutage, descCommitFailures, descCheckpoints, descCheckpointFails,
		descCheckpointAge, descCheckpointLast, descLatency, descRunning,
		descPartitions, descGeneration, descBuffered, descPartial, descTruncated, descLag, descUnread, descEndOffset, descCommitted,
		descLagAge, descLagErrors,
		descScorerUsers, descEvictions, descExpiries, descSkipped, descModelSwaps, descModelRefusals, descModelInfo,
		descReady, descLive,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.health != nil {
		ready, _ := c.health.Ready()
		live, _ := c.health.Live()
		ch <- gauge(descReady, boolFloat(ready))
		ch <- gauge(descLive, boolFloat(live))
	}
	src := c.m.src.Load()
	if src == nil {
		return
	}
	if src.Pipeline != nil {
		collectPipeline(ch, src, now)
	}
	if src.Consumer != nil {
		collectConsumer(ch, src, now)
	}
	if src.Scorer != nil {
		s := src.Scorer()
		ch <- gauge(descScorerUsers, float64(s.Users))
		ch <- counter(descEvictions, float64(s.Evictions))
		ch <- counter(descExpiries, float64(s.Expiries))
		ch <- counter(descSkipped, float64(s.Skipped))
		ch <- counter(descModelSwaps, float64(s.ModelSwaps))
		ch <- counter(descModelRefusals, float64(s.ModelRefusals))
		ch <- gauge(descModelInfo, 1, s.ModelVersion, s.Device)
	}
}

func collectPipeline(ch chan<- prometheus.Metric, src *Sources, now time.Time) {
	st := src.Pipeline
	snap := st.Snapshot()
	ch <- counter(descInputRecords, float64(snap.Records))
	ch <- counter(descEventsValid, float64(snap.EventsValid))
	ch <- counter(descRecommendations, float64(snap.Refreshes))
	ch <- counter(descBatches, float64(snap.Batches))
	ch <- counter(descCommitFailures, float64(snap.CommitFailures))
	ch <- gauge(descRunning, boolFloat(st.Running()))
	for reason, n := range snap.DeadByReason {
		ch <- counter(descDeadLetters, float64(n), reason)
	}

	// Per-sink series exist for every sink (and the dead-letter topic) from
	// the first scrape, so that rate() and alerts see them start at zero.
	errs, outages := st.SinkErrors(), st.Outages()
	sinks := map[string]bool{"dead_letters": true}
	for _, s := range src.SinkNames {
		sinks[s] = true
	}
	for _, m := range []map[string]uint64{snap.Retries, errs} {
		for s := range m {
			sinks[s] = true
		}
	}
	for s := range sinks {
		ch <- counter(descSinkRetries, float64(snap.Retries[s]), s)
		ch <- counter(descSinkErrors, float64(errs[s]), s)
		o, down := outages[s]
		ch <- gauge(descSinkUnavailable, boolFloat(down), s)
		var lasted float64
		if down {
			lasted = now.Sub(o.Since).Seconds()
		}
		ch <- gauge(descSinkOutage, lasted, s)
	}

	if ckpts := st.Checkpoints.Load(); src.CheckpointsEnabled || ckpts > 0 || st.CheckpointFailures.Load() > 0 {
		ch <- counter(descCheckpoints, float64(ckpts))
		ch <- counter(descCheckpointFails, float64(st.CheckpointFailures.Load()))
		if last := st.LastCheckpointUnixNano.Load(); last > 0 {
			ch <- gauge(descCheckpointAge, now.Sub(time.Unix(0, last)).Seconds())
			ch <- gauge(descCheckpointLast, float64(last)/1e9)
		}
	}

	bounds := make([]time.Duration, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		bounds[i] = time.Duration(b * float64(time.Second))
	}
	cum, count, sum := st.LatencyDistribution(bounds)
	buckets := make(map[float64]uint64, len(bounds))
	for i, b := range LatencyBuckets {
		buckets[b] = cum[i]
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, count, sum.Seconds(), buckets)
}

func collectConsumer(ch chan<- prometheus.Metric, src *Sources, now time.Time) {
	cs := src.Consumer.Stats()
	topic := src.Consumer.Topic()
	ch <- gauge(descPartitions, float64(len(cs.Partitions)))
	ch <- gauge(descGeneration, float64(cs.Generation))
	ch <- gauge(descBuffered, float64(cs.BufferedBatches))
	ch <- gauge(descPartial, float64(cs.PartialRecords))
	ch <- counter(descTruncated, float64(cs.Truncated))
	if src.Lag == nil {
		return
	}
	ends, starts, at, failures := src.Lag.Offsets()
	ch <- counter(descLagErrors, float64(failures))
	if at.IsZero() {
		return
	}
	ch <- gauge(descLagAge, now.Sub(at).Seconds())
	for _, p := range cs.Partitions {
		end, ok := ends[int32(p)]
		if !ok {
			continue // assigned since the last listing
		}
		part := strconv.Itoa(p)
		ch <- gauge(descEndOffset, float64(end), topic, part)
		// Where the group stands: its commit, or before the first commit the
		// start of the log (a restart would read everything).
		pos, committed := cs.Committed[p]
		if committed {
			ch <- gauge(descCommitted, float64(pos), topic, part)
		} else {
			pos = starts[int32(p)]
		}
		ch <- gauge(descLag, float64(max(end-pos, 0)), topic, part)
		read, ok := cs.Delivered[p]
		if !ok {
			read = pos
		}
		ch <- gauge(descUnread, float64(max(end-read, 0)), topic, part)
	}
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
