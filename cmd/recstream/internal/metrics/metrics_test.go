package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/cmd/recstream/internal/metrics/metricstest"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/consumers"
	"github.com/recstream/recstream/schemas"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func startServer(t *testing.T, m *Metrics, h *Health) string {
	t.Helper()
	srv, err := NewServer("127.0.0.1:0", m, h, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close(context.Background()) })
	return "http://" + srv.Addr()
}

func TestProbesFollowPhasesAndChecks(t *testing.T) {
	h := NewHealth()
	base := startServer(t, New(h), h)
	var sinkDown error
	h.AddReadinessCheck("sinks", func() error { return sinkDown })

	steps := []struct {
		phase           Phase
		sinkDown        error
		wantLive        int
		wantReady       int
		wantReadyReason string
	}{
		{PhaseStarting, nil, 200, 503, "starting"},
		{PhaseRestoring, nil, 200, 503, "restoring user state from a checkpoint"},
		{PhaseRunning, nil, 200, 200, "ready"},
		{PhaseRunning, errors.New("clickhouse unavailable for 2s"), 200, 503, "sinks: clickhouse unavailable for 2s"},
		{PhaseStopping, nil, 200, 503, "draining"},
		{PhaseStopped, nil, 503, 503, "stopped"},
	}
	for _, s := range steps {
		h.SetPhase(s.phase)
		sinkDown = s.sinkDown
		code, body := get(t, base+"/healthz")
		if code != s.wantLive {
			t.Errorf("%v: /healthz = %d %q, want %d", s.phase, code, body, s.wantLive)
		}
		code, body = get(t, base+"/readyz")
		if code != s.wantReady || !strings.Contains(body, s.wantReadyReason) {
			t.Errorf("%v: /readyz = %d %q, want %d with %q", s.phase, code, body, s.wantReady, s.wantReadyReason)
		}
		fams, err := metricstest.Scrape(context.Background(), base+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := fams.Value("recstream_ready"); v != boolFloat(s.wantReady == 200) {
			t.Errorf("%v: recstream_ready = %v, /readyz said %d", s.phase, v, s.wantReady)
		}
	}
}

func TestRegistryIsPrivate(t *testing.T) {
	m := New(nil)
	m.BatchDone(pipeline.BatchObservation{Records: 10, Events: 9, DeadLetters: 1, Score: time.Millisecond})
	def, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range def {
		if strings.HasPrefix(f.GetName(), Namespace+"_") {
			t.Fatalf("%s is on the global default registry", f.GetName())
		}
	}
	// Two instances in one process do not collide.
	New(nil).BatchDone(pipeline.BatchObservation{})
	got, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := metricstest.FromGathered(got)
	if v, _ := fams.Value("recstream_batch_size", "kind", "records"); v != 1 {
		t.Errorf("recstream_batch_size{kind=records} count = %v, want 1", v)
	}
	if _, ok := fams.Value("go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
}

func TestObserverFeedsHistograms(t *testing.T) {
	m := New(nil)
	m.Attach(Sources{SinkNames: []string{"clickhouse", "kafka"}})
	for i := range 3 {
		m.BatchDone(pipeline.BatchObservation{Records: 100 * (i + 1), Events: 90, DeadLetters: 10, Recommendations: 40,
			Score: 3 * time.Millisecond, Write: 20 * time.Millisecond, Commit: time.Millisecond})
		m.SinkWritten("clickhouse", 15*time.Millisecond, 1, nil)
		m.SinkWritten("kafka", 2*time.Second, 4, nil)
	}
	got, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := metricstest.FromGathered(got)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"recstream_stage_duration_seconds", []string{"stage", "score"}, 3},
		{"recstream_stage_duration_seconds", []string{"stage", "commit"}, 3},
		{"recstream_sink_write_duration_seconds", []string{"sink", "kafka"}, 3},
		{"recstream_sink_write_attempts_total", []string{"sink", "kafka"}, 12},
		{"recstream_sink_write_attempts_total", []string{"sink", "clickhouse"}, 3},
		{"recstream_batch_size", []string{"kind", "dead_letters"}, 3},
	} {
		if v, ok := fams.Value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// The histogram's buckets place the samples where they belong.
	for _, m := range fams["recstream_sink_write_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() != "kafka" {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 2 {
				want = 3
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("kafka write bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
}

// TestConsumerLag runs a real consumer against an in-process broker: the
// lag is the end offset minus the committed offset, per partition, and
// falls to zero once everything is committed.
func TestConsumerLag(t *testing.T) {
	const topic = "lag.test"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 30 records to partition 0, 10 to partition 1 (values need not be valid events).
	var recs []*kgo.Record
	for i := range 40 {
		p := int32(0)
		if i >= 30 {
			p = 1
		}
		recs = append(recs, &kgo.Record{Partition: p, Value: []byte("not json " + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cons, err := consumers.NewConsumer(consumers.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: "lag-test",
		Batch: consumers.BatchConfig{MaxRows: 1000, Linger: 50 * time.Millisecond}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	lag := NewLagMonitor(admin, topic, time.Second, zaptest.NewLogger(t))
	m := New(nil)
	m.Attach(Sources{Consumer: cons, Lag: lag})
	scrape := func() metricstest.Families {
		t.Helper()
		if err := lag.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		return metricstest.FromGathered(got)
	}

	// Read everything, commit nothing: all 40 records are lag, none unread.
	var read int
	var commits []schemas.PartitionOffset
	for read < 40 {
		b, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += b.Records
		commits = append(commits, b.Commit...)
		b.Release()
	}
	fams := scrape()
	for _, c := range []struct {
		part            string
		lag, unread, hw float64
	}{{"0", 30, 0, 30}, {"1", 10, 0, 10}} {
		if v, _ := fams.Value("recstream_consumer_lag_records", "partition", c.part); v != c.lag {
			t.Errorf("partition %s lag = %v before commit, want %v", c.part, v, c.lag)
		}
		if v, _ := fams.Value("recstream_consumer_unread_records", "partition", c.part); v != c.unread {
			t.Errorf("partition %s unread = %v, want %v", c.part, v, c.unread)
		}
		if v, _ := fams.Value("recstream_consumer_end_offset", "partition", c.part, "topic", topic); v != c.hw {
			t.Errorf("partition %s end offset = %v, want %v", c.part, v, c.hw)
		}
	}
	if v, _ := fams.Value("recstream_consumer_assigned_partitions"); v != 2 {
		t.Errorf("assigned partitions = %v, want 2", v)
	}

	// Commit what was read: the lag falls to zero.
	if err := cons.Commit(ctx, commits); err != nil {
		t.Fatal(err)
	}
	fams = scrape()
	if v := fams.Sum("recstream_consumer_lag_records"); v != 0 {
		t.Errorf("total lag after committing everything = %v, want 0", v)
	}
	if v, _ := fams.Value("recstream_consumer_committed_offset", "partition", "0"); v != 30 {
		t.Errorf("partition 0 committed = %v, want 30", v)
	}
	if v, ok := fams.Value("recstream_consumer_end_offsets_errors_total"); !ok || v != 0 {
		t.Errorf("end offset errors = %v (found %v), want 0", v, ok)
	}
}
