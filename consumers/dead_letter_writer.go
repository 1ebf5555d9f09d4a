package consumers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/internal/kafkaauth"
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
// 1 MiB fail (FACTS.md), and the writer's batches are 1 MiB.
const maxDeadLetterBytes = 1<<20 - 16<<10

// maxDeadLetterKeyBytes bounds the key kept of a record that must be
// truncated.
const maxDeadLetterKeyBytes = 16 << 10

// DeadLetterWriter writes rejected input records to the dead-letter topic,
// each unchanged (key and value as the producer wrote them) with the reason
// and source position in headers. Messages are partitioned by key with the
// Java client's murmur2 hash, so a user's rejects stay together.
type DeadLetterWriter struct {
	topic string
	log   *zap.Logger
	w     *kafka.Writer
}

// NewDeadLetterWriter returns a writer to topic. It does not create the
// topic (see EnsureTopic) and connects on first use, through auth (TLS,
// SASL; nil means plaintext). log nil means no logging.
func NewDeadLetterWriter(brokers []string, topic string, auth *kafkaauth.Auth, log *zap.Logger) *DeadLetterWriter {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("dead_letter_topic", topic))
	return &DeadLetterWriter{
		topic: topic,
		log:   log,
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchSize:    5000,
			BatchBytes:   1 << 20, // larger batches fail (FACTS.md)
			BatchTimeout: 2 * time.Millisecond,
			MaxAttempts:  3,                 // kafka-go's own retries (metadata refresh); Write retries beyond
			Transport:    auth.Transport(0), // its own: a shared one caches stale metadata
			ErrorLogger:  kafkaLogger(log, zap.WarnLevel),
		},
	}
}

// Write writes dls, read from sourceTopic, and returns once the brokers
// have acknowledged every message (acks=all). Failures the brokers call
// temporary are retried with backoff until ctx ends; any other failure is
// returned. On error some messages may have been written: a retry of the
// same batch may duplicate them in the dead-letter topic, never lose them.
func (w *DeadLetterWriter) Write(ctx context.Context, sourceTopic string, dls []schemas.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	pending := make([]kafka.Message, len(dls))
	for i := range dls {
		pending[i] = deadLetterMessage(sourceTopic, &dls[i])
	}
	bo := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0)), ctx)
	var lastErr error
	attempt := func() error {
		err := w.w.WriteMessages(ctx, pending...)
		if err == nil {
			pending = nil
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		lastErr = err
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) {
			failed := pending[:0]
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, pending[i])
					if !retriable(e) {
						err = e
					}
				}
			}
			pending = failed
		}
		if !retriable(err) {
			return backoff.Permanent(err)
		}
		w.log.Warn("write dead letters failed; retrying", zap.Int("messages", len(pending)), zap.Error(err))
		return err
	}
	if err := backoff.Retry(attempt, bo); err != nil {
		if lastErr != nil && !errors.Is(err, lastErr) {
			return fmt.Errorf("write %d of %d dead letters to %s: %w (last error: %v)", len(pending), len(dls), w.topic, err, lastErr)
		}
		return fmt.Errorf("write %d of %d dead letters to %s: %w", len(pending), len(dls), w.topic, err)
	}
	return nil
}

// retriable reports whether a write error may go away by itself: a
// temporary broker error, a network error, or a partial batch failure.
func retriable(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		return true // each failed message was classified on its own
	}
	var tooLarge kafka.MessageTooLargeError
	return !errors.As(err, &tooLarge)
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
func (w *DeadLetterWriter) Close() error {
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("close dead-letter writer for %s: %w", w.topic, err)
	}
	return nil
}
