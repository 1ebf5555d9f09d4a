package main

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/schemas"
)

const (
	testInputTopic = "clickstream.events"
	testDLQTopic   = "clickstream.dlq"
)

// stack is a real broker (over TCP), a real ClickHouse server and a trained
// model, all under one test's temporary directory.
type stack struct {
	broker   *embedded.KafkaBroker // the in-process broker; nil on Apache Kafka
	apache   *embedded.ApacheKafka // the Apache Kafka cluster; nil on kfake
	addrs    []string              // the brokers' addresses, whichever runs
	ch       *embedded.ClickHouseServer
	modelDir string
	cfg      config.Config
	// clientOpts are added to the franz-go clients the helpers make (TLS
	// and SASL against a secured broker); nil for a plaintext one.
	clientOpts []kgo.Opt
}

// kafkaStarter starts a stack's Kafka cluster under dir with the test
// topics (partitions each), sets s.addrs and its own field of s, and
// registers its shutdown with t.Cleanup.
type kafkaStarter func(t *testing.T, s *stack, dir string, partitions int)

// startStack starts a stack on the in-process kfake broker.
func startStack(t *testing.T, partitions int) *stack {
	t.Helper()
	return startStackOn(t, partitions, startKfake)
}

// startKfake is the kafkaStarter of the in-process broker, with its log on
// disk under dir.
func startKfake(t *testing.T, s *stack, dir string, partitions int) {
	t.Helper()
	broker, err := embedded.StartKafka(embedded.KafkaConfig{
		DataDir: filepath.Join(dir, "kafka"), Partitions: partitions,
		Topics: []string{testInputTopic, testDLQTopic},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	s.broker, s.addrs = broker, broker.Addrs()
}

// startStackOn starts ClickHouse, then Kafka with startKafka, then trains
// the model.
func startStackOn(t *testing.T, partitions int, startKafka kafkaStarter) *stack {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch, err := embedded.StartClickHouse(ctx, filepath.Join(dir, "clickhouse"), zaptest.NewLogger(t).Named("clickhouse-server"))
	if err != nil {
		t.Fatalf("start clickhouse (run make setup): %v", err)
	}
	t.Cleanup(func() { ch.Stop() })
	s := &stack{ch: ch}
	startKafka(t, s, dir, partitions)

	modelDir := filepath.Join(dir, "model")
	gen := generator.New(generator.Config{Seed: 99, Users: 500, Items: 2000})
	if _, err := trainDemoModel(ctx, gen, 20000, modelDir, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{Kafka: config.KafkaConfig{Brokers: s.addrs}}
	cfg.Input.Topic = testInputTopic
	cfg.Input.DeadLetterTopic = testDLQTopic
	cfg.Input.Batch.MaxRows = 1000
	cfg.Scorer.ModelDir = modelDir
	cfg.ClickHouse.Addr = []string{ch.Addr()}
	cfg.Output.Partitions = partitions
	cfg.Pipeline.RetryInitial = 20 * time.Millisecond
	cfg.Pipeline.RetryMax = 200 * time.Millisecond
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s.modelDir, s.cfg = modelDir, cfg
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// produced is what a test wrote to the input topic.
type produced struct {
	total      int
	byKind     map[string]int
	validUsers map[string]bool
}

func produce(t *testing.T, s *stack, seed uint64, n int, malformed float64) produced {
	t.Helper()
	gen := generator.New(generator.Config{Seed: seed, Users: 500, Items: 2000, MalformedRate: malformed})
	recs := make([]generator.Record, n)
	p := produced{total: n, byKind: map[string]int{}, validUsers: map[string]bool{}}
	for i := range recs {
		recs[i] = gen.Next()
		p.byKind[recs[i].Kind]++
		if recs[i].Kind == generator.KindValid {
			p.validUsers[recs[i].UserID] = true
		}
	}
	cl, err := kgo.NewClient(append(s.clientOpts, kgo.SeedBrokers(s.addrs...), kgo.DefaultProduceTopic(testInputTopic),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(n+1))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	batch := make([]*kgo.Record, n)
	for i, r := range recs {
		// The log time is the event time, so that two stacks fed the same
		// input hold byte-identical logs (produced_at comes from it).
		batch[i] = &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: r.Time}
	}
	if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", n, err)
	}
	return p
}

// consumeAll reads every record of topic from the start.
func consumeAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(out), want, topic, ctx.Err())
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// runUntil runs the pipeline until it has taken want input records, then
// stops it gracefully; it fails the test if Run returns an error.
func runUntil(t *testing.T, s *stack, want uint64) *components {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := buildPipeline(ctx, s.cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.pipeline.Run(runCtx) }()
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), want, 2*time.Minute, done); err != nil {
		stop()
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
	return c
}

// runUntilCommitted runs the pipeline until the group's committed offsets
// sum to want (the whole input), then stops it gracefully.
func runUntilCommitted(t *testing.T, s *stack, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := buildPipeline(ctx, s.cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.pipeline.Run(runCtx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for committedRecords(t, s) < want {
		select {
		case err := <-done:
			t.Fatalf("pipeline stopped early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("committed %d of %d records within 2m", committedRecords(t, s), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
}

func openClickHouse(t *testing.T, s *stack) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.ch.Addr()}, Auth: clickhouse.Auth{Database: s.cfg.ClickHouse.Database, Username: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestBadInputLosesNothing is the backbone's promise: 10,000 events with
// malformed JSON, missing fields, oversize messages, unknown types and bad
// timestamps among them; every one is either applied or dead-lettered with
// its reason, and every user with a valid event has a recommendation in
// ClickHouse and in the output topic.
func TestBadInputLosesNothing(t *testing.T) {
	s := startStack(t, 4)
	p := produce(t, s, 7, 10000, 0.08)
	if len(p.byKind) < 6 {
		t.Fatalf("generator made too few kinds of bad input: %v", p.byKind)
	}
	c := runUntil(t, s, uint64(p.total))
	assertNothingLost(t, s, p, c.pipeline.Stats().Snapshot())
}

// assertNothingLost checks the backbone's promise after a run that took all
// of p: every event was applied or dead-lettered with its reason and origin,
// ClickHouse and the output topic hold a recommendation for exactly the
// users with a valid event, at the same version, and the group committed
// the input to its end.
func assertNothingLost(t *testing.T, s *stack, p produced, st pipeline.Snapshot) {
	t.Helper()
	if st.EventsValid+st.DeadLetters != uint64(p.total) {
		t.Fatalf("valid %d + dead-lettered %d != produced %d", st.EventsValid, st.DeadLetters, p.total)
	}
	if st.EventsValid != uint64(p.byKind[generator.KindValid]) {
		t.Errorf("valid = %d, want %d", st.EventsValid, p.byKind[generator.KindValid])
	}
	for kind, n := range p.byKind {
		if kind != generator.KindValid && st.DeadByReason[kind] != uint64(n) {
			t.Errorf("dead letters with reason %s = %d, want %d (all: %v)", kind, st.DeadByReason[kind], n, st.DeadByReason)
		}
	}

	// The dead-letter topic holds each rejected record with its reason and origin.
	dlq := consumeAll(t, s.addrs, testDLQTopic)
	if len(dlq) != int(st.DeadLetters) {
		t.Fatalf("dead-letter topic has %d records, want %d", len(dlq), st.DeadLetters)
	}
	for _, r := range dlq {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h["recstream.reason"] == "" || h["recstream.source.topic"] != testInputTopic || h["recstream.source.offset"] == "" {
			t.Fatalf("dead letter at offset %d lacks reason or origin headers: %v", r.Offset, h)
		}
		if _, ok := p.byKind[h["recstream.reason"]]; !ok {
			t.Errorf("dead letter reason %q is not one the generator produced", h["recstream.reason"])
		}
	}

	// Every user with a valid event has a recommendation in ClickHouse...
	conn := openClickHouse(t, s)
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT user_id, version, length(items) FROM recommendations FINAL")
	if err != nil {
		t.Fatal(err)
	}
	chVersion := map[string]uint64{}
	for rows.Next() {
		var user string
		var version, items uint64
		if err := rows.Scan(&user, &version, &items); err != nil {
			t.Fatal(err)
		}
		if items == 0 {
			t.Errorf("user %s has an empty recommendation", user)
		}
		chVersion[user] = version
	}
	rows.Close()
	assertSameUsers(t, "clickhouse recommendations", chVersion, p.validUsers)
	var events uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != st.EventsValid {
		t.Errorf("clickhouse events table has %d rows, want %d", events, st.EventsValid)
	}

	// ...and a record in the output topic, whose newest version matches.
	kafkaVersion := map[string]uint64{}
	for _, r := range consumeAll(t, s.addrs, s.cfg.Output.Topic) {
		rec, err := schemas.DecodeRecommendationJSON(r.Value)
		if err != nil {
			t.Fatalf("output record at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if string(r.Key) != rec.UserID {
			t.Fatalf("output record key %q != user_id %q", r.Key, rec.UserID)
		}
		if rec.Version < kafkaVersion[rec.UserID] {
			t.Errorf("user %s: version went back from %d to %d", rec.UserID, kafkaVersion[rec.UserID], rec.Version)
		}
		kafkaVersion[rec.UserID] = rec.Version
	}
	assertSameUsers(t, "output topic", kafkaVersion, p.validUsers)
	for u, v := range chVersion {
		if kafkaVersion[u] != v {
			t.Errorf("user %s: clickhouse version %d, output topic version %d", u, v, kafkaVersion[u])
		}
	}

	// Offsets were committed up to the end of the input.
	assertCommittedToEnd(t, s)
}

func assertSameUsers(t *testing.T, where string, got map[string]uint64, want map[string]bool) {
	t.Helper()
	var missing, extra []string
	for u := range want {
		if _, ok := got[u]; !ok {
			missing = append(missing, u)
		}
	}
	for u := range got {
		if !want[u] {
			extra = append(extra, u)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s: %d users missing (first: %v), %d unexpected (first: %v)", where, len(missing), first(missing), len(extra), first(extra))
	}
}

func first(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func assertCommittedToEnd(t *testing.T, s *stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(s.clientOpts, kgo.SeedBrokers(s.addrs...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, testInputTopic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, s.cfg.Input.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(testInputTopic, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("partition %d: committed %s, end offset %d", o.Partition, describeCommit(c.At, ok), o.Offset)
		}
	})
}

func describeCommit(at int64, ok bool) string {
	if !ok {
		return "nothing"
	}
	return strconv.FormatInt(at, 10)
}

// committedRecords sums the group's committed offsets over the input topic.
func committedRecords(t *testing.T, s *stack) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(s.clientOpts, kgo.SeedBrokers(s.addrs...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, s.cfg.Input.GroupID)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0 // the group has not committed anything yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == testInputTopic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}
