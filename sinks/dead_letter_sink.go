package sinks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// Headers of a dead-letter message. EVENTS.md documents them for producers.
const (
	HeaderReason          = "recstream.reason"           // a schemas.Reason* code
	HeaderDetail          = "recstream.detail"           // human-readable explanation
	HeaderSourceTopic     = "recstream.source.topic"     // the input topic
	HeaderSourcePartition = "recstream.source.partition" // decimal
	HeaderSourceOffset    = "recstream.source.offset"    // decimal
	HeaderSourceTimestamp = "recstream.source.timestamp" // the input record's log time, decimal Unix milliseconds
	// HeaderTruncated is present only when the original record was too large
	// to dead-letter whole; its value is the original value size in bytes.
	HeaderTruncated = "recstream.truncated"
)

// maxDeadLetterBytes bounds one dead-letter message: kafka-go batches over
// 1 MiB fail (FACTS.md), and the sink's batches are 1 MiB.
const maxDeadLetterBytes = 1<<20 - 16<<10

// maxDeadLetterKeyBytes bounds the key kept of a record that must be
// truncated.
const maxDeadLetterKeyBytes = 16 << 10

// DeadLetterSink writes rejected input records to the dead-letter topic,
// each unchanged (key and value as the producer wrote them) with the reason
// and source position in headers. Messages are partitioned by key with the
// Java client's murmur2 hash, so a user's rejects stay together.
//
// Its errors fall in the package's classes, like the other sinks': the
// pipeline retries an unavailable dead-letter topic with the same backoff
// and back-pressure as an unavailable output.
type DeadLetterSink struct {
	topic     string
	log       *zap.Logger
	w         *kafka.Writer
	transport *kafka.Transport
}

// NewDeadLetterSink returns a sink writing to topic. It does not create the
// topic (see EnsureTopic) and connects on first use through transport: the
// wiring builds it with TLS and SASL, one per sink (nil means a new
// plaintext transport without authentication). log nil means no logging.
func NewDeadLetterSink(brokers []string, topic string, transport *kafka.Transport, log *zap.Logger) *DeadLetterSink {
	if log == nil {
		log = zap.NewNop()
	}
	if transport == nil {
		transport = &kafka.Transport{}
	}
	log = log.With(zap.String("dead_letter_topic", topic))
	return &DeadLetterSink{
		topic:     topic,
		log:       log,
		transport: transport,
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchSize:    5000,
			BatchBytes:   maxDeadLetterBatchBytes,
			BatchTimeout: 2 * time.Millisecond,
			// Few attempts inside the client (metadata refresh): the
			// pipeline retries whole batches with its own backoff.
			MaxAttempts: 3,
			Transport:   transport,
		},
	}
}

// maxDeadLetterBatchBytes bounds the writer's batches: kafka-go batches
// over 1 MiB fail (FACTS.md).
const maxDeadLetterBatchBytes = 1 << 20

// Write writes dls, read from sourceTopic, and returns once the brokers
// have acknowledged every message (acks=all). A failure the brokers or the
// network call temporary wraps ErrUnavailable; the pipeline then writes the
// whole batch again, which may duplicate some dead letters (never lose
// them): readers de-duplicate by the source position in the headers.
func (w *DeadLetterSink) Write(ctx context.Context, sourceTopic string, dls []schemas.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(dls))
	for i := range dls {
		msgs[i] = deadLetterMessage(sourceTopic, &dls[i])
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return kafkaWriteError(ctx, fmt.Sprintf("write %d dead letters to %s", len(dls), w.topic), maxDeadLetterBatchBytes, err)
	}
	return nil
}

// deadLetterMessage builds the dead-letter message of dl.
func deadLetterMessage(sourceTopic string, dl *schemas.DeadLetter) kafka.Message {
	headers := []kafka.Header{
		{Key: HeaderReason, Value: []byte(dl.Reason)},
		{Key: HeaderDetail, Value: []byte(dl.Detail)},
		{Key: HeaderSourceTopic, Value: []byte(sourceTopic)},
		{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(dl.Partition), 10)},
		{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, dl.Offset, 10)},
		{Key: HeaderSourceTimestamp, Value: strconv.AppendInt(nil, dl.Time.UnixMilli(), 10)},
	}
	key, value := dl.Key, dl.Value
	if len(key)+len(value) > maxDeadLetterBytes {
		// Too large for a batch: keep the head, which names the event, and
		// say how large the original was.
		headers = append(headers, kafka.Header{Key: HeaderTruncated, Value: strconv.AppendInt(nil, int64(len(value)), 10)})
		if len(key) > maxDeadLetterKeyBytes {
			key = key[:maxDeadLetterKeyBytes]
		}
		value = value[:maxDeadLetterBytes-len(key)]
	}
	return kafka.Message{Key: key, Value: value, Headers: headers}
}

// Close flushes nothing (Write is synchronous) and releases connections.
func (w *DeadLetterSink) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close dead-letter sink for %s: %w", w.topic, err)
	}
	return nil
}
