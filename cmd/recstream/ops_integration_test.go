package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/cmd/recstream/internal/metrics/metricstest"
)

// probe GETs an endpoint and returns its status and body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitProbe waits until url answers code, and returns the body.
func waitProbe(t *testing.T, url string, code int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, body := probe(t, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d %q for %s, want %d", url, got, body, timeout, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsAndProbesDuringARun runs the pipeline on the real stack with
// the operations endpoint on: the counters move as events flow, the lag
// rises and falls, and /readyz turns not-ready while ClickHouse is down
// (the pipeline retries it) and ready again once it is back, while
// /healthz stays live until the loop stops.
func TestMetricsAndProbesDuringARun(t *testing.T) {
	s := startStack(t, 4)
	cfg := s.cfg
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Metrics.LagInterval = 100 * time.Millisecond
	cfg.Checkpoint.Dir = filepath.Join(t.TempDir(), "checkpoints")
	// Every batch checkpoints: a first batch that comes sooner than an
	// interval after start-up would otherwise leave none to count.
	cfg.Checkpoint.Interval = time.Nanosecond
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t)

	obs, err := startObservability(cfg.Metrics, log)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	base := "http://" + obs.addr()
	if code, body := probe(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Fatalf("/readyz before the pipeline is built = %d %q, want 503 starting", code, body)
	}
	c, err := buildPipelineWith(ctx, cfg, log, buildOptions{health: obs.health})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := obs.attach(c, cfg); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- obs.runPipeline(runCtx, c) }()
	waitProbe(t, base+"/readyz", http.StatusOK, time.Minute) // partitions assigned
	if code, _ := probe(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d while running", code)
	}

	scrape := func() metricstest.Families {
		t.Helper()
		f, err := metricstest.Scrape(ctx, base+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	value := func(f metricstest.Families, name string, labels ...string) float64 {
		t.Helper()
		v, ok := f.Value(name, labels...)
		if !ok {
			t.Fatalf("%s%v not exported", name, labels)
		}
		return v
	}
	// lagSettles waits for the lag monitor to see the end offsets reach want
	// and returns the scrape where it did.
	lagSettles := func(wantEnd float64, wantLag func(float64) bool) metricstest.Families {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			f := scrape()
			if f.Sum("recstream_consumer_end_offset") == wantEnd && wantLag(f.Sum("recstream_consumer_lag_records")) {
				return f
			}
			if time.Now().After(deadline) {
				t.Fatalf("lag did not settle: end offsets %v (want %v), lag %v",
					f.Sum("recstream_consumer_end_offset"), wantEnd, f.Sum("recstream_consumer_lag_records"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	before := scrape()
	if v := value(before, "recstream_input_records_total"); v != 0 {
		t.Fatalf("input records = %v before any input", v)
	}
	first := produce(t, s, 31, 3000, 0.03)
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), uint64(first.total), time.Minute, done); err != nil {
		t.Fatal(err)
	}
	after := lagSettles(float64(first.total), func(l float64) bool { return l == 0 })
	st := c.pipeline.Stats().Snapshot()
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"recstream_input_records_total", nil, float64(first.total)},
		{"recstream_events_valid_total", nil, float64(st.EventsValid)},
		{"recstream_recommendations_total", nil, float64(st.Refreshes)},
		{"recstream_batches_total", nil, float64(st.Batches)},
		{"recstream_event_to_recommendation_seconds", nil, float64(st.EventsValid)}, // one sample per valid event
		{"recstream_stage_duration_seconds", []string{"stage", "score"}, float64(st.Batches)},
		{"recstream_batch_size", []string{"kind", "records"}, float64(st.Batches)},
		{"recstream_sink_write_duration_seconds", []string{"sink", "clickhouse"}, float64(st.Batches)},
		{"recstream_sink_unavailable", []string{"sink", "clickhouse"}, 0},
		{"recstream_ready", nil, 1},
		{"recstream_live", nil, 1},
		{"recstream_consumer_assigned_partitions", nil, 4},
	} {
		if got := value(after, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if got := after.Sum("recstream_dead_letters_total"); got != float64(st.DeadLetters) || got == 0 {
		t.Errorf("dead letters by reason sum to %v, want %d (> 0)", got, st.DeadLetters)
	}
	for reason, n := range st.DeadByReason {
		if got := value(after, "recstream_dead_letters_total", "reason", reason); got != float64(n) {
			t.Errorf("dead letters %s = %v, want %d", reason, got, n)
		}
	}
	if got := value(after, "recstream_scorer_users"); got != float64(len(first.validUsers)) {
		t.Errorf("users in state = %v, want %d", got, len(first.validUsers))
	}
	// A batch's checkpoint is saved just after the batch is counted: the
	// last one may still be on its way.
	saved := after
	waitFor(t, 30*time.Second, func() bool {
		saved = scrape()
		v, ok := saved.Value("recstream_checkpoints_total")
		return ok && v > 0
	})
	if got := value(saved, "recstream_checkpoint_age_seconds"); got < 0 || got > 60 {
		t.Errorf("checkpoint age = %v s", got)
	}
	if _, ok := after.Value("process_resident_memory_bytes"); !ok {
		t.Error("no process metrics")
	}

	// ClickHouse goes down: the pipeline retries it, /readyz says so, the
	// lag grows; the process stays live.
	if err := s.ch.Kill(); err != nil {
		t.Fatal(err)
	}
	second := produce(t, s, 32, 2000, 0.03)
	body := waitProbe(t, base+"/readyz", http.StatusServiceUnavailable, time.Minute)
	if !strings.Contains(body, "clickhouse unavailable") {
		t.Errorf("/readyz body during the outage does not name the sink: %q", body)
	}
	if code, body := probe(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %q during a sink outage: the process is alive and must not be restarted", code, body)
	}
	during := lagSettles(float64(first.total+second.total), func(l float64) bool { return l > 0 })
	if got := value(during, "recstream_sink_unavailable", "sink", "clickhouse"); got != 1 {
		t.Errorf("sink_unavailable{clickhouse} = %v during the outage", got)
	}
	if got := value(during, "recstream_sink_errors_total", "sink", "clickhouse"); got == 0 {
		t.Error("no ClickHouse errors counted during the outage")
	}
	if got := value(during, "recstream_ready"); got != 0 {
		t.Errorf("recstream_ready = %v during the outage", got)
	}

	// Back: ready again, everything written, lag gone.
	if err := s.ch.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitProbe(t, base+"/readyz", http.StatusOK, time.Minute)
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), uint64(first.total+second.total), time.Minute, done); err != nil {
		t.Fatal(err)
	}
	end := lagSettles(float64(first.total+second.total), func(l float64) bool { return l == 0 })
	if got := value(end, "recstream_input_records_total"); got != float64(first.total+second.total) {
		t.Errorf("input records = %v, want %d", got, first.total+second.total)
	}
	if got := value(end, "recstream_sink_retries_total", "sink", "clickhouse"); got == 0 {
		t.Error("no ClickHouse retries counted")
	}
	if got := value(end, "recstream_sink_unavailable", "sink", "clickhouse"); got != 0 {
		t.Errorf("sink_unavailable{clickhouse} = %v after the outage", got)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, body := probe(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopped") {
		t.Errorf("/healthz after the loop returned = %d %q, want 503 stopped", code, body)
	}
}
