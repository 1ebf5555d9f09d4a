package benchmark

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
)

// message is one Kafka record to produce.
type message struct{ Key, Value []byte }

// messagesOf returns the records' keys and values (no copy).
func messagesOf(recs []generator.Record) []message {
	out := make([]message, len(recs))
	for i, r := range recs {
		out[i] = message{Key: r.Key, Value: r.Value}
	}
	return out
}

// Settings of the raw producers: those measured fastest on kfake (see
// FACTS.md), acks from every replica as the sinks use.
const (
	kafkaGoWriterBatch   = 5000
	kafkaGoWriterCallers = 8
	maxBatchBytes        = 1 << 20 // kafka-go fails larger batches with Message Size Too Large
)

// produceKafkaGo writes msgs with a kafka-go Writer (batches of 5,000, 1 MiB,
// 2 ms linger, 8 concurrent callers, acks all, lz4 when lz4 is set) and
// returns how long it took, from the first write to the last
// acknowledgement.
func produceKafkaGo(ctx context.Context, brokers []string, topic string, msgs []message, lz4 bool) (time.Duration, error) {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		BatchSize:    kafkaGoWriterBatch,
		BatchBytes:   maxBatchBytes,
		BatchTimeout: 2 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		// Its own transport: the shared default caches topic metadata and
		// fails on topics created after it looked.
		Transport: &kafka.Transport{},
	}
	if lz4 {
		w.Compression = kafka.Lz4
	}
	defer w.Close()
	chunks := make([][]kafka.Message, 0, len(msgs)/kafkaGoWriterBatch+1)
	for lo := 0; lo < len(msgs); lo += kafkaGoWriterBatch {
		hi := min(lo+kafkaGoWriterBatch, len(msgs))
		chunk := make([]kafka.Message, hi-lo)
		for i, m := range msgs[lo:hi] {
			chunk[i] = kafka.Message{Key: m.Key, Value: m.Value}
		}
		chunks = append(chunks, chunk)
	}
	var next atomic.Int64
	errs := make([]error, kafkaGoWriterCallers)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range kafkaGoWriterCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(chunks) || ctx.Err() != nil {
					return
				}
				if err := w.WriteMessages(ctx, chunks[i]...); err != nil {
					errs[c] = fmt.Errorf("kafka-go write %d records to %s: %w", len(chunks[i]), topic, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	return took, errors.Join(errs...)
}

// newFranzProducer returns a franz-go client producing to topic with acks
// from every replica, room for many records in flight, and lz4 compression
// when lz4 is set (none otherwise).
func newFranzProducer(brokers []string, topic string, lz4 bool) (*kgo.Client, error) {
	compression := kgo.NoCompression()
	if lz4 {
		compression = kgo.Lz4Compression()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(maxBatchBytes),
		kgo.MaxBufferedRecords(1<<16),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(compression),
	)
	if err != nil {
		return nil, fmt.Errorf("franz-go producer for %s: %w", topic, err)
	}
	return cl, nil
}

// produceFranz writes msgs with franz-go and returns how long it took, from
// the first record to the last acknowledgement.
func produceFranz(ctx context.Context, brokers []string, topic string, msgs []message, lz4 bool) (time.Duration, error) {
	cl, err := newFranzProducer(brokers, topic, lz4)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	// Records are built before the clock starts; the client owns each one
	// until its promise runs.
	records := make([]kgo.Record, len(msgs))
	for i, m := range msgs {
		records[i] = kgo.Record{Key: m.Key, Value: m.Value}
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	start := time.Now()
	for i := range records {
		cl.Produce(ctx, &records[i], promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("franz-go flush %d records to %s: %w", len(records), topic, err)
	}
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return 0, fmt.Errorf("franz-go produce %d records to %s: %w", len(records), topic, firstErr)
	}
	return took, nil
}

// producer is a raw produce path measured as a ceiling.
type producer struct {
	id, name string
	produce  func(ctx context.Context, brokers []string, topic string, msgs []message, lz4 bool) (time.Duration, error)
}

// rawProducers are the produce paths measured; the fastest is the ceiling.
var rawProducers = []producer{
	{"kafka-go", "kafka-go Writer (batch 5000, 8 callers)", produceKafkaGo},
	{"franz-go", "franz-go Produce (async, 1 ms linger)", produceFranz},
}

// produceContenders returns the raw producers writing msgs (lz4-compressed
// when lz4 is set) to a fresh topic per repeat, as ceiling rows of stage.
func (r *run) produceContenders(stage, prefix string, msgs []message, lz4 bool) []contender {
	cs := make([]contender, 0, len(rawProducers))
	for _, p := range rawProducers {
		cs = append(cs, contender{
			row: Row{ID: "produce." + prefix + "." + p.id, Stage: stage, Name: "raw produce: " + p.name, Unit: "records/s", Ceiling: true,
				Note: fmt.Sprintf("%d records, %d partitions, acks=all, %s", len(msgs), r.cfg.Partitions, compressionName(lz4))},
			run: func(ctx context.Context, rep int) (float64, coreUse, error) {
				topic := fmt.Sprintf("bench.%s.%s.%d", prefix, p.id, rep)
				if err := r.createTopic(ctx, topic, r.cfg.Partitions); err != nil {
					return 0, coreUse{}, err
				}
				defer r.deleteTopic(ctx, topic)
				u := r.startUsage()
				took, err := p.produce(ctx, r.brokers(), topic, msgs, lz4)
				if err != nil {
					return 0, coreUse{}, err
				}
				return float64(len(msgs)) / took.Seconds(), u.read(), nil
			},
		})
	}
	return cs
}

// measureProduce measures the raw producers writing the data set.
func (r *run) measureProduce(ctx context.Context) error {
	if _, err := r.measureInTurns(ctx, r.produceContenders(StageProduce, "input", messagesOf(r.data.records), false)); err != nil {
		return fmt.Errorf("raw produce: %w", err)
	}
	r.report.markBest(StageProduce)
	return nil
}

func compressionName(lz4 bool) string {
	if lz4 {
		return "lz4"
	}
	return "no compression"
}
