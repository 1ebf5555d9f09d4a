package benchmark

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/sinks"
)

// outputTopic is where the Kafka output sink writes in the sink stage.
const outputTopic = "bench.recs.sink"

// measureKafkaOutput writes the scorer's recommendation batches with the
// Kafka output sink and, in turns, the same records (the sink's key and
// JSON value, its compression) with raw producers: as fast as they can (the
// ceiling), and one call per batch, one batch after another, as the
// pipeline writes them (what the raw clients reach at that batch size).
func (r *run) measureKafkaOutput(ctx context.Context) error {
	_, recs := r.sinkBatches()
	var msgs []message
	batches := make([][]message, len(recs))
	for k, b := range recs {
		rows := schemas.RecRows(b.Recs)
		from := len(msgs)
		for i := range int(b.Recs.NumRows()) {
			msgs = append(msgs, message{Key: []byte(rows.UserID.Value(i)), Value: schemas.AppendRecommendationRowJSON(nil, &rows, i)})
		}
		batches[k] = msgs[from:len(msgs):len(msgs)]
	}
	if len(msgs) == 0 {
		return fmt.Errorf("kafka output: no recommendations to write")
	}
	cfg := sinks.KafkaSinkConfig{Brokers: r.brokers(), Topic: outputTopic, Partitions: r.cfg.Partitions}.WithDefaults()
	lz4 := cfg.Compression == "lz4"
	cs := r.produceContenders(StageKafkaOutput, "recs", msgs, lz4)

	perBatch := fmt.Sprintf("%d batches of %.0f records on average", len(batches), float64(len(msgs))/float64(len(batches)))
	for _, p := range []struct {
		id, name string
		produce  func(ctx context.Context, topic string) (time.Duration, error)
	}{
		{"kafka-go", "kafka-go Writer with the sink's settings, one WriteMessages per batch", func(ctx context.Context, topic string) (time.Duration, error) {
			return produceBatchesKafkaGo(ctx, r.brokers(), topic, batches, cfg)
		}},
		{"franz-go", "franz-go, Produce every record then Flush, per batch", func(ctx context.Context, topic string) (time.Duration, error) {
			return produceBatchesFranz(ctx, r.brokers(), topic, batches, lz4)
		}},
	} {
		cs = append(cs, contender{
			row: Row{ID: "kafka-output.batched." + p.id, Stage: StageKafkaOutput, Name: "raw produce per batch: " + p.name,
				Unit: "records/s", Ceiling: true, Note: perBatch},
			run: func(ctx context.Context, rep int) (float64, coreUse, error) {
				topic := fmt.Sprintf("bench.recs.batched.%s.%d", p.id, rep)
				if err := r.createTopic(ctx, topic, r.cfg.Partitions); err != nil {
					return 0, coreUse{}, err
				}
				defer r.deleteTopic(ctx, topic)
				u := r.startUsage()
				took, err := p.produce(ctx, topic)
				if err != nil {
					return 0, coreUse{}, err
				}
				return float64(len(msgs)) / took.Seconds(), u.read(), nil
			},
		})
	}

	sink, err := sinks.NewKafkaSink(ctx, cfg, r.log.Named("output"))
	if err != nil {
		return fmt.Errorf("start kafka output sink: %w", err)
	}
	defer sink.Close()
	cs = append(cs, contender{
		row: Row{ID: "kafka-output.sink", Stage: StageKafkaOutput, Name: "sinks.KafkaSink.Write (from Arrow)", Unit: "records/s",
			Note: fmt.Sprintf("%s, one Write per batch, %s, batch size %s", perBatch, cfg.Compression, strconv.Itoa(cfg.BatchSize))},
		run: func(ctx context.Context, _ int) (float64, coreUse, error) {
			u := r.startUsage()
			start := time.Now()
			for i, b := range recs {
				if err := sink.Write(ctx, nil, b); err != nil {
					return 0, coreUse{}, fmt.Errorf("write batch %d: %w", i, err)
				}
			}
			return float64(len(msgs)) / time.Since(start).Seconds(), u.read(), nil
		},
	})
	if _, err := r.measureInTurns(ctx, cs); err != nil {
		return fmt.Errorf("kafka output: %w", err)
	}
	if best := r.report.markBest(StageKafkaOutput); best != nil {
		r.report.compare("kafka-output.sink", best.ID)
	}
	return nil
}

// produceBatchesKafkaGo writes each batch with one WriteMessages call of a
// kafka-go Writer configured as the Kafka output sink configures its own,
// one batch after another.
func produceBatchesKafkaGo(ctx context.Context, brokers []string, topic string, batches [][]message, cfg sinks.KafkaSinkConfig) (time.Duration, error) {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchBytes:   int64(cfg.BatchBytes),
		BatchSize:    cfg.BatchSize,
		BatchTimeout: cfg.Linger,
		Transport:    &kafka.Transport{},
	}
	if cfg.Compression == "lz4" {
		w.Compression = kafka.Lz4
	}
	defer w.Close()
	msgs := make([][]kafka.Message, len(batches))
	for i, b := range batches {
		msgs[i] = make([]kafka.Message, len(b))
		for j, m := range b {
			msgs[i][j] = kafka.Message{Key: m.Key, Value: m.Value}
		}
	}
	start := time.Now()
	for i, b := range msgs {
		if err := w.WriteMessages(ctx, b...); err != nil {
			return 0, fmt.Errorf("kafka-go write batch %d (%d records) to %s: %w", i, len(b), topic, err)
		}
	}
	return time.Since(start), nil
}

// produceBatchesFranz writes each batch with franz-go, waiting for the
// batch's acknowledgements (Flush) before the next one.
func produceBatchesFranz(ctx context.Context, brokers []string, topic string, batches [][]message, lz4 bool) (time.Duration, error) {
	cl, err := newFranzProducer(brokers, topic, lz4)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	records := make([][]kgo.Record, len(batches))
	for i, b := range batches {
		records[i] = make([]kgo.Record, len(b))
		for j, m := range b {
			records[i][j] = kgo.Record{Key: m.Key, Value: m.Value}
		}
	}
	var failed atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	start := time.Now()
	for i := range records {
		for j := range records[i] {
			cl.Produce(ctx, &records[i][j], promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return 0, fmt.Errorf("franz-go flush batch %d to %s: %w", i, topic, err)
		}
		if err := failed.Load(); err != nil {
			return 0, fmt.Errorf("franz-go produce batch %d to %s: %w", i, topic, *err)
		}
	}
	return time.Since(start), nil
}
