package sinks

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
)

func newKfake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newKafkaSink(t testing.TB, cfg KafkaSinkConfig) *KafkaSink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewKafkaSink(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("NewKafkaSink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func kgoClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeAll reads n records of topic from the start.
func consumeAll(t testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kgoClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(out), n, topic, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaSinkConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*KafkaSinkConfig)
		wantErr string
	}{
		{"defaults", func(*KafkaSinkConfig) {}, ""},
		{"no brokers", func(c *KafkaSinkConfig) { c.Brokers = nil }, "brokers:"},
		{"batch too big", func(c *KafkaSinkConfig) { c.BatchBytes = 2 << 20 }, "batch_bytes: must be in 1024..1048576, got 2097152"},
		{"negative partitions", func(c *KafkaSinkConfig) { c.Partitions = -1 }, "partitions:"},
		{"zero replication", func(c *KafkaSinkConfig) { c.ReplicationFactor = -1 }, "replication_factor:"},
		{"bad compression", func(c *KafkaSinkConfig) { c.Compression = "brotli" }, `compression: must be none, gzip, snappy, lz4 or zstd, got "brotli"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := KafkaSinkConfig{Brokers: []string{"127.0.0.1:9092"}}.WithDefaults()
			tt.modify(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	d := KafkaSinkConfig{}.WithDefaults()
	if d.Topic != "recs.users" || d.ReplicationFactor != 1 || d.BatchBytes != 1<<20 || d.Partitions != 0 {
		t.Errorf("defaults: %+v", d)
	}
}

// The sink creates its topic compacted, sized like the input topic, and a
// second sink uses the existing topic as it is.
func TestKafkaSinkCreatesCompactedTopic(t *testing.T) {
	c := newKfake(t, kfake.SeedTopics(5, "clickstream.events"))
	brokers := c.ListenAddrs()
	newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, InputTopic: "clickstream.events"})
	newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Topic: "recs.fixed", Partitions: 3})
	newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Topic: "recs.fixed", Partitions: 7}) // exists: kept
	newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Topic: "recs.default"})

	adm := kadm.NewClient(kgoClient(t, brokers))
	ctx := context.Background()
	details, err := adm.ListTopics(ctx, "recs.users", "recs.fixed", "recs.default")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{"recs.users": 5, "recs.fixed": 3, "recs.default": 8} {
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("%s has %d partitions, want %d", topic, got, want)
		}
	}
	configs, err := adm.DescribeTopicConfigs(ctx, "recs.users", "recs.fixed", "recs.default")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range configs {
		policy := ""
		for _, cfg := range rc.Configs {
			if cfg.Key == "cleanup.policy" && cfg.Value != nil {
				policy = *cfg.Value
			}
		}
		if policy != "compact" {
			t.Errorf("%s cleanup.policy = %q, want compact", rc.Name, policy)
		}
	}
}

// Records are keyed by user_id, carry the version header, decode to the
// batch's rows, land in the partition any Kafka client's default (murmur2)
// partitioner picks for the key, and are byte-identical when the same batch
// is written again.
func TestKafkaSinkRecords(t *testing.T) {
	c := newKfake(t)
	brokers := c.ListenAddrs()
	s := newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Partitions: 4})
	recs, want := makeRecs(t, recSpec{n: 300, k: 20, versionBase: 100, seed: 3})
	defer recs.Release()
	ctx := context.Background()
	for range 2 {
		if err := s.Write(ctx, nil, recs); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	// A record produced by franz-go with its default partitioner, for each
	// of a few users: it must land where the sink put that user.
	probe := kgoClient(t, brokers, kgo.DefaultProduceTopic("recs.users"))
	probePartition := map[string]int32{}
	for _, u := range []int{0, 1, 2, 3, 57, 299} {
		r := probe.ProduceSync(ctx, &kgo.Record{Key: []byte(want[u].UserID), Value: []byte("probe")})
		if err := r.FirstErr(); err != nil {
			t.Fatal(err)
		}
		probePartition[want[u].UserID] = r[0].Record.Partition
	}

	records := consumeAll(t, brokers, "recs.users", 600+len(probePartition))
	byUser := map[string][]*kgo.Record{}
	for _, r := range records {
		if string(r.Value) == "probe" {
			continue
		}
		byUser[string(r.Key)] = append(byUser[string(r.Key)], r)
	}
	if len(byUser) != 300 {
		t.Fatalf("records for %d users, want 300", len(byUser))
	}
	usedPartitions := map[int32]bool{}
	for i, w := range want {
		rs := byUser[w.UserID]
		if len(rs) != 2 {
			t.Fatalf("%s: %d records, want 2", w.UserID, len(rs))
		}
		wantJSON := schemas.AppendRecommendationJSON(nil, &want[i])
		for _, r := range rs {
			if !bytes.Equal(r.Value, wantJSON) {
				t.Fatalf("%s: value\n%s\nwant\n%s", w.UserID, r.Value, wantJSON)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != VersionHeader || string(r.Headers[0].Value) != strconv.FormatUint(w.Version, 10) {
				t.Errorf("%s: headers %+v, want %s=%d", w.UserID, r.Headers, VersionHeader, w.Version)
			}
			if r.Timestamp.UnixMilli() != w.ProducedAtMs {
				t.Errorf("%s: record timestamp %d, want produced_at %d", w.UserID, r.Timestamp.UnixMilli(), w.ProducedAtMs)
			}
			if r.Partition != rs[0].Partition {
				t.Errorf("%s: records in partitions %d and %d", w.UserID, rs[0].Partition, r.Partition)
			}
			got, err := schemas.DecodeRecommendationJSON(r.Value)
			if err != nil {
				t.Fatalf("%s: decode: %v", w.UserID, err)
			}
			if got.UserID != w.UserID || got.Version != w.Version || len(got.Items) != 20 || got.Items[19] != w.Items[19] {
				t.Errorf("%s: decoded %+v", w.UserID, got)
			}
		}
		usedPartitions[rs[0].Partition] = true
		if p, ok := probePartition[w.UserID]; ok && p != rs[0].Partition {
			t.Errorf("%s: sink wrote to partition %d, franz-go's default partitioner to %d", w.UserID, rs[0].Partition, p)
		}
	}
	if len(usedPartitions) != 4 {
		t.Errorf("300 users landed in %d partitions, want all 4", len(usedPartitions))
	}
}

// With the brokers gone, Write fails with ErrUnavailable.
func TestKafkaSinkBrokerDownIsUnavailable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.ListenAddrs() // kfake cannot answer this once closed
	s := newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Partitions: 2})
	recs, _ := makeRecs(t, recSpec{n: 10, k: 3})
	defer recs.Release()
	if err := s.Write(context.Background(), nil, recs); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Write(ctx, nil, recs)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write with the broker down: %v; want ErrUnavailable", err)
	}
	t.Logf("outage error: %v", err)

	_, err = NewKafkaSink(ctx, KafkaSinkConfig{Brokers: brokers}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewKafkaSink with the broker down: %v; want ErrUnavailable", err)
	}
}

func TestKafkaSinkFatalAndCanceled(t *testing.T) {
	c := newKfake(t)
	s := newKafkaSink(t, KafkaSinkConfig{Brokers: c.ListenAddrs(), BatchBytes: 4096})
	big, _ := makeRecs(t, recSpec{n: 2, k: 400}) // about 8 KB per record
	defer big.Release()
	err := s.Write(context.Background(), nil, big)
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "batch_bytes") {
		t.Errorf("oversized record: error = %v; want a fatal error naming batch_bytes", err)
	}

	recs, _ := makeRecs(t, recSpec{n: 3, k: 2})
	defer recs.Release()
	checkContextErrors(t, func(ctx context.Context) error { return s.Write(ctx, nil, recs) })
	if err := s.Write(context.Background(), nil, &schemas.RecommendationBatch{}); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

// Writes from several goroutines (one per input partition) share one sink.
func TestKafkaSinkConcurrentWrites(t *testing.T) {
	c := newKfake(t)
	brokers := c.ListenAddrs()
	s := newKafkaSink(t, KafkaSinkConfig{Brokers: brokers, Partitions: 3})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			recs, _ := makeRecs(t, recSpec{n: 250, userBase: g * 250, k: 5, seed: uint64(g)})
			defer recs.Release()
			errs <- s.Write(context.Background(), nil, recs)
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	users := map[string]bool{}
	for _, r := range consumeAll(t, brokers, "recs.users", 1000) {
		got, err := schemas.DecodeRecommendationJSON(r.Value)
		if err != nil || got.UserID != string(r.Key) {
			t.Fatalf("record %s: %v (user %q)", r.Key, err, got.UserID)
		}
		users[got.UserID] = true
	}
	if len(users) != 1000 {
		t.Errorf("%d users, want 1000", len(users))
	}
}
