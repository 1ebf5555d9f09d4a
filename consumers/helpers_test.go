package consumers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/recstream/recstream/schemas"
)

const (
	inTopic  = "clickstream.events"
	dlqTopic = "clickstream.dlq"
)

// newCluster starts an in-process Kafka broker on 127.0.0.1 with the input
// and dead-letter topics, and returns its addresses.
func newCluster(t testing.TB, partitions int32) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, inTopic, dlqTopic))
	if err != nil {
		t.Fatalf("start kfake broker (run make setup if modules are missing): %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// testLogger logs warnings and errors into the test output.
func testLogger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// produced is a record the tests wrote, by its position.
type produced struct {
	Key, Value []byte
	Bad        bool // expected to be dead-lettered
}

type pos struct {
	P int
	O int64
}

// producer writes records to explicit partitions and remembers each one's
// position.
type producer struct {
	t   testing.TB
	cl  *kgo.Client
	all map[pos]produced
}

func newProducer(t testing.TB, addrs []string) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.DefaultProduceTopic(inTopic))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl, all: map[pos]produced{}}
}

// produce writes n records spread over partitions; every badEvery-th one
// (if badEvery > 0) is invalid in a way that cycles through the reasons.
func (p *producer) produce(n, partitions, badEvery int) {
	p.t.Helper()
	recs := make([]*kgo.Record, 0, n)
	meta := make(map[*kgo.Record]produced, n)
	base := len(p.all)
	for i := range n {
		id := base + i
		user := id % 97
		key := fmt.Appendf(nil, "u-%d", user)
		value := testEvent(user, id)
		bad := badEvery > 0 && i%badEvery == badEvery-1
		if bad {
			switch (i / badEvery) % 4 {
			case 0:
				value = []byte(`{"broken json`)
			case 1:
				value = fmt.Appendf(nil, `{"event_id":"e-%d","user_id":"u-%d","type":"view","ts":1748779200000}`, id, user)
			case 2:
				value = fmt.Appendf(nil, `{"event_id":"e-%d","user_id":"u-%d","item_id":"i","type":"teleport","ts":1748779200000}`, id, user)
			case 3:
				key = []byte("someone-else")
			}
		}
		r := &kgo.Record{Partition: int32(id % partitions), Key: key, Value: value}
		recs = append(recs, r)
		meta[r] = produced{Key: key, Value: value, Bad: bad}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := p.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		p.t.Fatalf("produce %d records: %v", n, err)
	}
	for _, r := range res { // in completion order, not input order
		p.all[pos{int(r.Record.Partition), r.Record.Offset}] = meta[r.Record]
	}
}

// seen collects the positions a consumer returned, failing on duplicates.
type seen struct {
	t     testing.TB
	pos   map[pos]bool
	valid int
	dead  []schemas.DeadLetter
}

func newSeen(t testing.TB) *seen { return &seen{t: t, pos: map[pos]bool{}} }

// add records a batch's positions and checks the batch's invariants.
func (s *seen) add(b *schemas.EventBatch) {
	s.t.Helper()
	rows := schemas.Rows(b.Events)
	max := map[int]int64{}
	note := func(p int, o int64) {
		if s.pos[pos{p, o}] {
			s.t.Errorf("record %d/%d returned twice", p, o)
		}
		s.pos[pos{p, o}] = true
		if o+1 > max[p] {
			max[p] = o + 1
		}
	}
	for i := range int(b.Events.NumRows()) {
		note(int(rows.Partition.Value(i)), rows.Offset.Value(i))
	}
	for _, dl := range b.DeadLetters {
		note(dl.Partition, dl.Offset)
	}
	s.valid += int(b.Events.NumRows())
	s.dead = append(s.dead, b.DeadLetters...)
	if b.Records != int(b.Events.NumRows())+len(b.DeadLetters) {
		s.t.Errorf("batch Records %d != %d rows + %d dead letters", b.Records, b.Events.NumRows(), len(b.DeadLetters))
	}
	if len(b.Commit) != len(max) {
		s.t.Errorf("batch Commit %v, want one entry per partition of %v", b.Commit, max)
	}
	for _, c := range b.Commit {
		if max[c.Partition] != c.Offset {
			s.t.Errorf("batch Commit %v, want partition %d at %d", b.Commit, c.Partition, max[c.Partition])
		}
	}
}

// nextN calls Next until want records have been returned or ctx ends,
// recording every batch in s (and releasing it), and returns the batches'
// commit positions in order.
func nextN(ctx context.Context, t testing.TB, c *Consumer, s *seen, want int, check func(*schemas.EventBatch)) [][]schemas.PartitionOffset {
	t.Helper()
	var commits [][]schemas.PartitionOffset
	for len(s.pos) < want {
		b, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d of %d records: %v", len(s.pos), want, err)
		}
		s.add(b)
		if check != nil {
			check(b)
		}
		commits = append(commits, b.Commit)
		b.Release()
	}
	return commits
}

// readTopic reads n records of topic from the start with franz-go.
func readTopic(ctx context.Context, t testing.TB, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d records: %v", topic, len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func newTestConsumer(t testing.TB, cfg ReaderConfig) *Consumer {
	t.Helper()
	c, err := NewConsumer(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}
