package benchmark

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/consumers"
	"github.com/recstream/recstream/schemas"
)

// fetchMaxBytes bounds one fetch of the raw consumers: large, so that a
// fetch is never what holds them back.
const fetchMaxBytes = 10 << 20

// consumer is a raw consume path measured as a ceiling: it reads want
// records of topic without decoding them and returns the time from the
// moment it could start fetching (partitions assigned, connections made) to
// the last record; group joins and connection set-up are not counted, as
// they are not for the stages. It calls span.begin and span.stop where its
// clock starts and stops.
type consumer struct {
	id, name string
	consume  func(ctx context.Context, brokers []string, topic, group string, partitions, want int, span *cpuSpan) (time.Duration, error)
}

// rawConsumers are the consume paths measured; the fastest is the ceiling.
var rawConsumers = []consumer{
	{"kafka-go-reader", "kafka-go group Reader (ReadMessage)", consumeKafkaGoReader},
	{"kafka-go-readbatch", "kafka-go Conn.ReadBatch per partition", consumeKafkaGoReadBatch},
	{"franz-go", "franz-go group consumer (PollFetches)", consumeFranz},
}

// consumeKafkaGoReader reads with kafka-go's group Reader, one ReadMessage
// per record, committing in the background every second. The Reader tells
// nothing of its group join, so the clock starts at the first record.
func consumeKafkaGoReader(ctx context.Context, brokers []string, topic, group string, _, want int, span *cpuSpan) (time.Duration, error) {
	rd := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        brokers,
		Topic:          topic,
		GroupID:        group,
		MinBytes:       1,
		MaxBytes:       fetchMaxBytes,
		StartOffset:    kafka.FirstOffset,
		CommitInterval: time.Second,
	})
	defer rd.Close()
	var start time.Time
	for got := 0; got < want; got++ {
		if _, err := rd.ReadMessage(ctx); err != nil {
			return 0, fmt.Errorf("kafka-go reader: read %d of %d records: %w", got, want, err)
		}
		if got == 0 {
			start = time.Now()
			span.begin()
		}
	}
	span.stop()
	return time.Since(start), nil
}

// consumeKafkaGoReadBatch reads every partition on its own connection to
// the leader with Conn.ReadBatch, no consumer group: kafka-go's bulk path.
func consumeKafkaGoReadBatch(ctx context.Context, brokers []string, topic, _ string, partitions, want int, span *cpuSpan) (time.Duration, error) {
	type part struct {
		conn        *kafka.Conn
		first, last int64
	}
	parts := make([]part, partitions)
	defer func() {
		for _, p := range parts {
			if p.conn != nil {
				p.conn.Close()
			}
		}
	}()
	total := 0
	for i := range parts {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, i)
		if err != nil {
			return 0, fmt.Errorf("kafka-go dial leader of %s/%d: %w", topic, i, err)
		}
		parts[i].conn = conn
		if parts[i].first, parts[i].last, err = conn.ReadOffsets(); err != nil {
			return 0, fmt.Errorf("kafka-go offsets of %s/%d: %w", topic, i, err)
		}
		if _, err := conn.Seek(parts[i].first, kafka.SeekAbsolute); err != nil {
			return 0, fmt.Errorf("kafka-go seek %s/%d: %w", topic, i, err)
		}
		total += int(parts[i].last - parts[i].first)
	}
	if total < want {
		return 0, fmt.Errorf("kafka-go: %s holds %d records, want %d", topic, total, want)
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(parts))
	)
	span.begin()
	start := time.Now()
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := p.first
			for next < p.last {
				if err := p.conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
					errs[i] = err
					return
				}
				batch := p.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: 500 * time.Millisecond})
				for {
					m, err := batch.ReadMessage()
					if err != nil {
						break
					}
					next = m.Offset + 1
				}
				if err := batch.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
					errs[i] = fmt.Errorf("kafka-go read batch of %s/%d at %d: %w", topic, i, next, err)
					return
				}
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	span.stop()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return took, nil
}

// consumeFranz reads with a franz-go group consumer, PollFetches, no
// commits. The clock starts when the group assigns the partitions: the
// client fetches right after, and a first poll may already return a large
// part of a small topic.
func consumeFranz(ctx context.Context, brokers []string, topic, group string, _, want int, span *cpuSpan) (time.Duration, error) {
	var startNs atomic.Int64
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(fetchMaxBytes),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			if startNs.CompareAndSwap(0, time.Now().UnixNano()) {
				span.begin()
			}
		}))
	if err != nil {
		return 0, fmt.Errorf("franz-go consumer: %w", err)
	}
	defer cl.Close()
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("franz-go consumer read %d of %d records: %w", got, want, err)
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("%s/%d: %w", t, p, err))
		})
		if fetchErr != nil {
			return 0, fmt.Errorf("franz-go fetch: %w", fetchErr)
		}
		got += fs.NumRecords()
	}
	span.stop()
	return time.Since(time.Unix(0, startNs.Load())), nil
}

// measureConsume reads the whole input topic with each raw consumer and
// with consumers.Consumer (fetch, decode, validate, Arrow batching; the
// pipeline's default settings), in turns, a fresh group each time. Then it
// cuts the batches the scorer and the sinks are measured on (see
// batchTopic).
func (r *run) measureConsume(ctx context.Context) error {
	want := len(r.data.records)
	var batchCounts []string
	cs := make([]contender, 0, len(rawConsumers)+1)
	for _, c := range rawConsumers {
		cs = append(cs, contender{
			row: Row{ID: "consume." + c.id, Stage: StageConsume, Name: "raw consume: " + c.name, Unit: "events/s", Ceiling: true, Note: "no decoding"},
			run: func(ctx context.Context, rep int) (float64, coreUse, error) {
				ctx, cancel := context.WithTimeout(ctx, r.timeout(want))
				defer cancel()
				span := r.newSpan()
				took, err := c.consume(ctx, r.brokers(), InputTopic, fmt.Sprintf("bench-raw-%s-%d", c.id, rep), r.cfg.Partitions, want, span)
				if err != nil {
					return 0, coreUse{}, err
				}
				return float64(want) / took.Seconds(), span.result(), nil
			},
		})
	}
	cs = append(cs, contender{
		row: Row{ID: "consume.consumer", Stage: StageConsume, Name: "consumers.Consumer: fetch + decode + Arrow batches", Unit: "events/s",
			Note: fmt.Sprintf("batches of up to %d records, the pipeline's settings", consumers.DefaultBatchMaxRows)},
		run: func(ctx context.Context, rep int) (float64, coreUse, error) {
			ctx, cancel := context.WithTimeout(ctx, r.timeout(want))
			defer cancel()
			span := r.newSpan()
			rate, batches, err := consumeBatches(ctx, r.brokers(), fmt.Sprintf("bench-consumer-%d", rep), want, span)
			if err != nil {
				return 0, coreUse{}, err
			}
			batchCounts = append(batchCounts, strconv.Itoa(batches))
			return rate, span.result(), nil
		},
	})
	if _, err := r.measureInTurns(ctx, cs); err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	row := r.report.Row("consume.consumer")
	row.Note += fmt.Sprintf("; batches cut per repeat: %s", strings.Join(batchCounts, ", "))

	var err error
	if r.data.events, err = batchTopic(ctx, r.brokers(), want); err != nil {
		return err
	}
	r.report.Data.EventBatches = len(r.data.events)
	if best := r.report.markBest(StageConsume); best != nil {
		r.report.compare("consume.consumer", best.ID)
	}
	return nil
}

// consumeBatches reads want records with a fresh consumers.Consumer and
// returns records per second, from the first record fetched to the last
// batch returned, and the number of batches it cut. span measures the CPU
// from the first batch on.
func consumeBatches(ctx context.Context, brokers []string, group string, want int, span *cpuSpan) (float64, int, error) {
	c, err := consumers.NewConsumer(consumers.ReaderConfig{Brokers: brokers, Topic: InputTopic, GroupID: group,
		DeadLetterTopic: DeadLetterTopic}, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("start consumer: %w", err)
	}
	defer c.Close()
	var first time.Time
	got, batches := 0, 0
	for got < want {
		b, err := c.Next(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("consumer read %d of %d records: %w", got, want, err)
		}
		if first.IsZero() {
			span.begin()
		}
		if first.IsZero() || (!b.FirstFetched.IsZero() && b.FirstFetched.Before(first)) {
			first = b.FirstFetched
		}
		got += b.Records
		batches++
		b.Release()
	}
	span.stop()
	return float64(got) / time.Since(first).Seconds(), batches, nil
}

// batchTopic reads the whole input topic (franz-go, no group) and cuts it
// into batches with consumers.Batcher at the pipeline's bounds (5,000
// records or 4 MiB), decoding each record with the pipeline's decoder and
// taking the partitions in turn, record by record, as the consumer's
// fetchers (one per partition) append to its one batcher: the batches
// consumers.Consumer makes, minus its linger, which depends on timing. The
// scorer and the sinks are measured on these, the same from run to run.
func batchTopic(ctx context.Context, brokers []string, want int) ([]*schemas.EventBatch, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(InputTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(fetchMaxBytes))
	if err != nil {
		return nil, fmt.Errorf("read the input topic: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	bat := consumers.NewBatcher(InputTopic, consumers.BatchConfig{Linger: time.Hour}, nil)
	defer bat.Release()
	dec := schemas.NewEventDecoder(schemas.EventLimits{})
	byPartition := map[int32][]*kgo.Record{}
	for got := 0; got < want; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read the input topic: %d of %d records: %w", got, want, err)
		}
		fs.EachRecord(func(kr *kgo.Record) {
			got++
			byPartition[kr.Partition] = append(byPartition[kr.Partition], kr)
		})
	}
	parts := slices.Sorted(maps.Keys(byPartition))
	var (
		out []*schemas.EventBatch
		ev  schemas.Event
	)
	for i := 0; ; i++ {
		added := false
		for _, p := range parts {
			if i >= len(byPartition[p]) {
				continue
			}
			added = true
			kr := byPartition[p][i]
			rec := consumers.Record{Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value,
				Time: kr.Timestamp, Fetched: kr.Timestamp}
			if !bat.Fits(len(rec.Key) + len(rec.Value)) {
				out = append(out, bat.Flush())
			}
			if derr := dec.Decode(rec.Key, rec.Value, rec.Time, &ev); derr != nil {
				bat.AddDeadLetter(&rec, derr.Reason, derr.Detail)
			} else {
				bat.AddEvent(&rec, &ev)
			}
			if bat.Full() {
				out = append(out, bat.Flush())
			}
		}
		if !added {
			break
		}
	}
	if b := bat.Flush(); b != nil {
		out = append(out, b)
	}
	return out, nil
}
