package consumers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recstream/recstream/schemas"
)

func TestNewConsumerRequiresInputTopic(t *testing.T) {
	_, addrs := newCluster(t, 1)
	_, err := NewConsumer(ReaderConfig{Brokers: addrs, Topic: "no.such.topic"}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), `input topic "no.such.topic" does not exist`) {
		t.Fatalf("NewConsumer on a missing topic = %v, want an error saying it does not exist", err)
	}
}

// TestConsumerAccountsForEveryRecord checks that batches respect their
// bounds and that every produced record comes back exactly once, valid or
// dead-lettered with the right reason.
func TestConsumerAccountsForEveryRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 4)
	p := newProducer(t, addrs)
	p.produce(6000, 4, 10)
	recSize := len(testEvent(1, 1000))

	tests := []struct {
		name  string
		batch BatchConfig
	}{
		{"rows", BatchConfig{MaxRows: 700, Linger: time.Second}},
		{"bytes", BatchConfig{MaxBytes: 300 * recSize, Linger: time.Second}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestConsumer(t, ReaderConfig{Brokers: addrs, GroupID: fmt.Sprintf("g-%d", i), Batch: tt.batch})
			s := newSeen(t)
			nextN(ctx, t, c, s, len(p.all), func(b *schemas.EventBatch) {
				if tt.batch.MaxRows > 0 && b.Records > tt.batch.MaxRows {
					t.Errorf("batch of %d records, max_rows %d", b.Records, tt.batch.MaxRows)
				}
				if tt.batch.MaxBytes > 0 && b.Bytes > tt.batch.MaxBytes {
					t.Errorf("batch of %d bytes, max_bytes %d", b.Bytes, tt.batch.MaxBytes)
				}
			})
			// Every produced record was returned once (seen fails on
			// duplicates), and nothing else was.
			for ps := range p.all {
				if !s.pos[ps] {
					t.Fatalf("record %v never returned", ps)
				}
			}
			if len(s.pos) != len(p.all) {
				t.Fatalf("returned %d records, produced %d", len(s.pos), len(p.all))
			}
			wantBad := 0
			for _, pr := range p.all {
				if pr.Bad {
					wantBad++
				}
			}
			if len(s.dead) != wantBad || s.valid+len(s.dead) != len(p.all) {
				t.Fatalf("valid %d + dead %d, want %d + %d", s.valid, len(s.dead), len(p.all)-wantBad, wantBad)
			}
			reasons := map[string]int{}
			for _, dl := range s.dead {
				pr := p.all[pos{dl.Partition, dl.Offset}]
				if !pr.Bad || string(pr.Value) != string(dl.Value) || string(pr.Key) != string(dl.Key) {
					t.Fatalf("dead letter %d/%d (%s) does not match what was produced: %q %q vs %+v", dl.Partition, dl.Offset, dl.Reason, dl.Key, dl.Value, pr)
				}
				reasons[dl.Reason]++
			}
			for _, r := range []string{schemas.ReasonMalformedJSON, schemas.ReasonMissingField, schemas.ReasonUnknownType, schemas.ReasonKeyMismatch} {
				if reasons[r] == 0 {
					t.Errorf("no dead letter with reason %s: %v", r, reasons)
				}
			}
		})
	}
}

func TestConsumerLinger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 2)
	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, Batch: BatchConfig{Linger: 300 * time.Millisecond}})
	waitAssigned(ctx, t, c, 2)
	p := newProducer(t, addrs)
	p.produce(3, 2, 0)

	b, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	waited := time.Since(b.FirstFetched)
	if b.Records != 3 {
		t.Errorf("batch of %d records, want the 3 produced", b.Records)
	}
	if waited < 300*time.Millisecond || waited > 2*time.Second {
		t.Errorf("batch returned %s after its first fetch, linger 300ms", waited)
	}
}

func waitAssigned(ctx context.Context, t testing.TB, c *Consumer, partitions int) {
	t.Helper()
	for len(c.Stats().Partitions) != partitions {
		select {
		case <-ctx.Done():
			t.Fatalf("consumer never got %d partitions: %+v", partitions, c.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Let the fetchers resolve their start offsets.
	time.Sleep(200 * time.Millisecond)
}

// TestConsumerCommitAndResume: a consumer commits some batches and stops;
// the next consumer of the group starts exactly after the committed
// positions, so committed records are not seen again and uncommitted ones
// are delivered again.
func TestConsumerCommitAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 3)
	p := newProducer(t, addrs)
	p.produce(3000, 3, 50)
	cfg := ReaderConfig{Brokers: addrs, GroupID: "resume", Batch: BatchConfig{MaxRows: 200}}

	c1, err := NewConsumer(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s1 := newSeen(t)
	commits := nextN(ctx, t, c1, s1, 2000, nil)
	// Commit the first half of the batches, as the pipeline would once the
	// sinks acknowledged them; the rest stays uncommitted.
	committed := map[int]int64{}
	for _, pos := range commits[:len(commits)/2] {
		if err := c1.Commit(ctx, pos); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		for _, po := range pos {
			committed[po.Partition] = po.Offset
		}
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Commit(ctx, commits[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}

	c2 := newTestConsumer(t, cfg)
	s2 := newSeen(t)
	wantAfter := 0
	for ps := range p.all {
		if ps.O >= committed[ps.P] {
			wantAfter++
		}
	}
	nextN(ctx, t, c2, s2, wantAfter, nil)
	for ps := range s2.pos {
		if ps.O < committed[ps.P] {
			t.Fatalf("record %v was committed but returned again", ps)
		}
	}
	redelivered := 0
	for ps := range s1.pos {
		if ps.O >= committed[ps.P] {
			if !s2.pos[ps] {
				t.Fatalf("record %v was returned but not committed, and never returned again", ps)
			}
			redelivered++
		}
	}
	if redelivered == 0 || len(s2.pos) != wantAfter {
		t.Fatalf("redelivered %d, second consumer saw %d of %d", redelivered, len(s2.pos), wantAfter)
	}
}

// TestConsumerBackPressure: when Next is not called, the consumer holds at
// most MaxBufferedBatches complete batches plus the one being built, and
// loses nothing once Next resumes.
func TestConsumerBackPressure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 4)
	p := newProducer(t, addrs)
	p.produce(5000, 4, 0)
	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, MaxBufferedBatches: 3, Batch: BatchConfig{MaxRows: 100}})

	// The bound fills (however long a loaded machine takes), is never
	// passed, and holds while nobody calls Next.
	withinBound := func() ConsumerStats {
		s := c.Stats()
		if s.BufferedBatches > 3 || s.PartialRecords > 100 {
			t.Fatalf("consumer buffered beyond its bound: %+v", s)
		}
		return s
	}
	waitFor(ctx, t, func() bool {
		s := withinBound()
		return s.BufferedBatches == 3 && s.PartialRecords == 100
	})
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		withinBound()
		time.Sleep(5 * time.Millisecond)
	}
	s := newSeen(t)
	nextN(ctx, t, c, s, len(p.all), func(b *schemas.EventBatch) {
		if b.Records > 100 {
			t.Errorf("batch of %d records", b.Records)
		}
	})
}

// TestConsumerNextAfterStopTakesNothing: with batches buffered, a Next
// whose context is done returns the context's error instead of a batch,
// so that a soft stop does not drain the whole buffer first.
func TestConsumerNextAfterStopTakesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 4)
	p := newProducer(t, addrs)
	p.produce(2000, 4, 0)
	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, MaxBufferedBatches: 3, Batch: BatchConfig{MaxRows: 100}})
	waitFor(ctx, t, func() bool { return c.Stats().BufferedBatches == 3 })

	stopped, stop := context.WithCancel(ctx)
	stop()
	if b, err := c.Next(stopped); !errors.Is(err, context.Canceled) || b != nil {
		t.Fatalf("Next after a stop = %v, %v; want no batch and context.Canceled", b, err)
	}
	if n := c.Stats().BufferedBatches; n != 3 {
		t.Fatalf("%d batches buffered after a stopped Next, want the 3 it left", n)
	}
	b, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("Next with a live context: %v", err)
	}
	b.Release()
}

// TestConsumerOffsetOutOfRange: records below the committed offset were
// deleted (retention); the consumer restarts at the first record left.
func TestConsumerOffsetOutOfRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster, addrs := newCluster(t, 1)
	p := newProducer(t, addrs)
	p.produce(100, 1, 0)
	cfg := ReaderConfig{Brokers: addrs, GroupID: "oor", Batch: BatchConfig{MaxRows: 10}}

	c1, err := NewConsumer(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s1 := newSeen(t)
	commits := nextN(ctx, t, c1, s1, 10, nil)
	if err := c1.Commit(ctx, commits[0]); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	if err := cluster.DeleteRecords(inTopic, 0, 60); err != nil {
		t.Fatal(err)
	}

	c2 := newTestConsumer(t, cfg)
	s2 := newSeen(t)
	nextN(ctx, t, c2, s2, 40, nil)
	for ps := range s2.pos {
		if ps.O < 60 {
			t.Fatalf("returned deleted record %v", ps)
		}
	}
	// Committed at 10, deleted up to 60: 50 records lost before they were
	// read, and counted as such.
	if got := c2.Stats().Truncated; got != 50 {
		t.Fatalf("Truncated = %d, want the 50 records deleted past the committed offset", got)
	}
}

// TestConsumerResumesRestoredStateInEveryGeneration: the scorer's state
// was restored from a checkpoint at offset 10 of every partition, while the
// group has committed every record. A partition that this consumer gets only
// in a later generation (another member held it first) must still start
// where the state stands, not at the committed offset: starting there skips
// records the state never applied. Before the fix only the first generation
// honoured ResumeFrom.
func TestConsumerResumesRestoredStateInEveryGeneration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 4)
	p := newProducer(t, addrs)
	p.produce(400, 4, 0)
	cfg := ReaderConfig{Brokers: addrs, GroupID: "restored", HeartbeatInterval: 100 * time.Millisecond,
		Batch: BatchConfig{MaxRows: 50, Linger: 10 * time.Millisecond}}

	// Another member reads and commits everything, and keeps the partitions.
	other, err := NewConsumer(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range nextN(ctx, t, other, newSeen(t), len(p.all), nil) {
		if err := other.Commit(ctx, pos); err != nil {
			t.Fatal(err)
		}
	}

	restored := cfg
	restored.ResumeFrom = map[int]int64{0: 10, 1: 10, 2: 10, 3: 10}
	c := newTestConsumer(t, restored)
	for len(c.Stats().Partitions) == 0 { // the split generation
		if ctx.Err() != nil {
			t.Fatalf("restored consumer never got partitions: %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := c.Stats().Partitions
	if err := other.Close(); err != nil { // its partitions move in the next generation
		t.Fatal(err)
	}
	waitAssigned(ctx, t, c, 4)

	want := 0
	for ps := range p.all {
		if ps.O >= 10 {
			want++
		}
	}
	s := newSeen(t)
	readCtx, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	for len(s.pos) < want {
		b, err := c.Next(readCtx)
		if err != nil {
			break
		}
		s.add(b)
		b.Release()
	}
	for part := range 4 {
		n := 0
		for ps := range s.pos {
			if ps.P == part {
				if ps.O < 10 {
					t.Errorf("record %v is before the restored state's position", ps)
				}
				n++
			}
		}
		if n != 90 {
			t.Errorf("partition %d: returned %d records from offset 10, want 90 (held in the first generation: %v): "+
				"a partition assigned later started at its committed offset, past the restored state", part, n, first)
		}
	}
}

func TestConsumerStartLatest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 2)
	p := newProducer(t, addrs)
	p.produce(50, 2, 0)
	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, StartOffset: StartLatest, Batch: BatchConfig{Linger: 20 * time.Millisecond}})
	waitAssigned(ctx, t, c, 2)
	p.produce(10, 2, 0)
	s := newSeen(t)
	nextN(ctx, t, c, s, 10, nil)
	for ps := range s.pos {
		if ps.O < 25 {
			t.Fatalf("start_offset latest returned old record %v", ps)
		}
	}
}

// TestConsumerRebalance: a second member joins while the first is busy
// (it processes each batch slowly, so fetched data is buffered and batches
// are in flight). The partitions are split between them, neither returns a
// record twice (the first resumes its kept partitions after what it
// returned, not at the last commit), and together they return every record.
func TestConsumerRebalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, addrs := newCluster(t, 4)
	p := newProducer(t, addrs)
	p.produce(4000, 4, 0)
	total := len(p.all)
	cfg := ReaderConfig{Brokers: addrs, GroupID: "rebalance", HeartbeatInterval: 100 * time.Millisecond,
		Batch: BatchConfig{MaxRows: 50, Linger: 10 * time.Millisecond}}

	type member struct {
		c *Consumer
		s *seen
	}
	var mu sync.Mutex // guards the seen sets while both members run
	union := map[pos]bool{}
	consume := func(m member, work time.Duration) {
		for ctx.Err() == nil {
			b, err := m.c.Next(ctx)
			if err != nil {
				return
			}
			time.Sleep(work) // the sinks
			mu.Lock()
			m.s.add(b)
			for ps := range m.s.pos {
				union[ps] = true
			}
			done := len(union) == total
			mu.Unlock()
			if err := m.c.Commit(ctx, b.Commit); err != nil && ctx.Err() == nil {
				t.Errorf("Commit: %v", err)
			}
			b.Release()
			if done {
				cancel()
			}
		}
	}
	a := member{newTestConsumer(t, cfg), newSeen(t)}
	var wg sync.WaitGroup
	wg.Go(func() { consume(a, 5*time.Millisecond) })
	for {
		mu.Lock()
		n := len(a.s.pos)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := a.c.Stats(); len(s.Partitions) != 4 || s.BufferedBatches == 0 {
		t.Fatalf("first member should own every partition and have batches waiting: %+v", s)
	}
	b := member{newTestConsumer(t, cfg), newSeen(t)}
	wg.Go(func() { consume(b, 0) })
	for {
		sa, sb := a.c.Stats(), b.c.Stats()
		if len(sa.Partitions) > 0 && len(sb.Partitions) > 0 && sa.Generation == sb.Generation {
			if slices.ContainsFunc(sa.Partitions, func(p int) bool { return slices.Contains(sb.Partitions, p) }) {
				t.Errorf("both members own a partition: %v and %v", sa.Partitions, sb.Partitions)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("second member never got partitions: %+v / %+v", sa, sb)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(union) != total {
		t.Fatalf("members returned %d distinct records of %d", len(union), total)
	}
	if len(b.s.pos) == 0 {
		t.Fatalf("second member returned nothing")
	}
	t.Logf("first member returned %d records, second %d, of %d (records in flight at the rebalance are returned by both)",
		len(a.s.pos), len(b.s.pos), total)
}

// TestConsumerRetriesBrokerErrors: fetches that fail (the broker drops the
// connection, or answers that it is not the partition's leader) are retried
// on a new connection, and every record still comes back exactly once.
func TestConsumerRetriesBrokerErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster, addrs := newCluster(t, 2)
	p := newProducer(t, addrs)
	p.produce(1000, 2, 0)

	var mu sync.Mutex
	fetches, dropped, notLeader := 0, 0, 0
	cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		fetches++
		switch {
		case fetches%3 == 1 && dropped < 3:
			dropped++
			return nil, errors.New("injected: drop the connection"), true
		case fetches%3 == 2 && notLeader < 3:
			notLeader++
			freq := req.(*kmsg.FetchRequest)
			resp := freq.ResponseKind().(*kmsg.FetchResponse)
			for _, rt := range freq.Topics {
				st := kmsg.NewFetchResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})

	c := newTestConsumer(t, ReaderConfig{Brokers: addrs, Batch: BatchConfig{MaxRows: 100, Linger: 10 * time.Millisecond}})
	s := newSeen(t)
	nextN(ctx, t, c, s, len(p.all), nil)
	mu.Lock()
	defer mu.Unlock()
	// How many fetches a run makes depends on timing; what matters is that
	// both kinds of fault happened and nothing was lost.
	if dropped == 0 || notLeader == 0 {
		t.Fatalf("injected %d dropped connections and %d not-leader errors, want at least one of each", dropped, notLeader)
	}
	for ps := range p.all {
		if !s.pos[ps] {
			t.Fatalf("record %v lost", ps)
		}
	}
}

// BenchmarkConsumerThroughput reads 200k events of about 120 bytes from 8
// partitions of an in-process broker (which shares the CPUs), decoding and
// batching each; one op is the whole topic read by a fresh group.
func BenchmarkConsumerThroughput(b *testing.B) {
	const n, partitions = 200_000, 8
	_, addrs := newCluster(b, partitions)
	p := newProducer(b, addrs)
	for range n / 20_000 {
		p.produce(20_000, partitions, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		c, err := NewConsumer(ReaderConfig{Brokers: addrs, GroupID: fmt.Sprintf("bench-%d", i), Batch: BatchConfig{Linger: 5 * time.Millisecond}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for got := 0; got < n; {
			batch, err := c.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += batch.Records
			batch.Release()
		}
		c.Close()
		cancel()
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
}
