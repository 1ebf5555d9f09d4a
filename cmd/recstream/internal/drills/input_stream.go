package drills

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
)

// inputRecord is one record of a drill's input, in the order it is
// produced.
type inputRecord struct {
	key, value []byte
	// at is the event time, and also the record's log time, so that two
	// topics fed the same records hold byte-identical logs (the pipeline's
	// produced_at comes from the log time).
	at time.Time
	// kind is generator.KindValid for a good event, else the dead-letter
	// reason the pipeline must give the record.
	kind string
	// base is the record's index in the base stream, or -1 for a record of
	// the poison burst.
	base int
}

// position is where a record landed in its topic.
type position struct {
	Partition int32
	Offset    int64
}

// inputShape sizes the synthetic world of a drill: enough users that a
// batch touches many of them, few enough that each gets a history.
func inputShape(events int) generator.Config {
	return generator.Config{Users: max(500, events/40), Items: 2000, MalformedRate: 0.01}
}

// buildInput returns the base stream of a drill, events records of the
// generator seeded with seed (1% of them malformed, as producers make them),
// and, when poison > 0, poison hostile records inserted as one burst at the
// middle of it.
func buildInput(seed uint64, events, poison int) []inputRecord {
	gcfg := inputShape(events)
	gcfg.Seed = seed
	gen := generator.New(gcfg)
	out := make([]inputRecord, 0, events+poison)
	burstAt := events / 2
	for i := 0; i < events; i++ {
		r := gen.Next()
		if i == burstAt && poison > 0 {
			out = append(out, poisonBurst(seed, poison, gcfg.Users, r.Time)...)
		}
		out = append(out, inputRecord{key: r.Key, value: r.Value, at: r.Time, kind: r.Kind, base: i})
	}
	return out
}

// produceBatch is how many records one ProduceSync carries: small enough
// for a 1 MiB request with the biggest poison records, big enough to be
// quick.
const produceBatch = 2000

// inputStream produces a drill's input to its topic: a share at once, the
// rest spread evenly over a time span, so that faults hit a pipeline that
// is busy with a live stream. Finish produces what is left at once.
type inputStream struct {
	cl      *kgo.Client
	topic   string
	records []inputRecord

	positions []position // filled as records are acknowledged
	produced  atomic.Int64
	finish    chan struct{}
	finishOne sync.Once
	done      chan struct{}
	err       error
}

// startStream starts producing records to topic: warmup of them at once,
// the rest evenly over span (0: everything at once). It returns at once;
// Wait returns the records' positions when all are acknowledged.
func startStream(ctx context.Context, brokers []string, topic string, records []inputRecord, warmup int, span time.Duration) (*inputStream, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(produceBatch*2),
		kgo.ProducerLinger(0),
		// Metadata a broker loss makes stale is refreshed at once.
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka producer for %s: %w", topic, err)
	}
	s := &inputStream{cl: cl, topic: topic, records: records, positions: make([]position, len(records)),
		finish: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer cl.Close()
		s.err = s.run(ctx, min(warmup, len(records)), span)
	}()
	return s, nil
}

// run produces every record in order. The producer is idempotent (franz-go's
// default, acks=all), so retries across a broker loss neither reorder nor
// duplicate records: offsets are the same as in the reference run.
func (s *inputStream) run(ctx context.Context, warmup int, span time.Duration) error {
	if err := s.produce(ctx, 0, warmup); err != nil {
		return err
	}
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sent := warmup
	finished := span <= 0
	for sent < len(s.records) {
		due := len(s.records)
		if !finished {
			frac := float64(time.Since(start)) / float64(span)
			due = min(len(s.records), warmup+int(frac*float64(len(s.records)-warmup)))
		}
		if due > sent {
			if err := s.produce(ctx, sent, due); err != nil {
				return err
			}
			sent = due
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.finish:
			finished = true
		case <-tick.C:
		}
	}
	return nil
}

// produce writes records [from, to) and notes their positions.
func (s *inputStream) produce(ctx context.Context, from, to int) error {
	for lo := from; lo < to; lo += produceBatch {
		hi := min(to, lo+produceBatch)
		batch := make([]*kgo.Record, hi-lo)
		index := make(map[*kgo.Record]int, len(batch))
		for i := range batch {
			r := s.records[lo+i]
			batch[i] = &kgo.Record{Key: r.key, Value: r.value, Timestamp: r.at}
			index[batch[i]] = lo + i
		}
		res := s.cl.ProduceSync(ctx, batch...)
		if err := res.FirstErr(); err != nil {
			return fmt.Errorf("produce input records %d-%d to %s: %w", lo, hi-1, s.topic, err)
		}
		// Results come in the order the partitions answered.
		for _, r := range res {
			s.positions[index[r.Record]] = position{Partition: r.Record.Partition, Offset: r.Record.Offset}
		}
		s.produced.Store(int64(hi))
	}
	return nil
}

// Produced returns how many records are acknowledged so far.
func (s *inputStream) Produced() int { return int(s.produced.Load()) }

// WaitProduced waits until n records are acknowledged, the stream ends, or
// ctx ends.
func (s *inputStream) WaitProduced(ctx context.Context, n int) error {
	for s.Produced() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			if s.err != nil {
				return s.err
			}
			if s.Produced() < n {
				return errors.New("input stream ended early")
			}
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Finish makes the stream produce everything left at once.
func (s *inputStream) Finish() { s.finishOne.Do(func() { close(s.finish) }) }

// Wait finishes the stream and returns every record's position once all
// are acknowledged.
func (s *inputStream) Wait(ctx context.Context) ([]position, error) {
	s.Finish()
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.positions, nil
}
