package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// fetchMaxWait is how long the broker holds a fetch of a partition with no
// new records; it bounds nothing the user sees (a fetch returns as soon as
// one record arrives) and only paces polling of idle partitions.
const fetchMaxWait = 500 * time.Millisecond

// fetchTimeout bounds one fetch round trip, so a broker that stops
// answering is noticed and the fetch retried on a new connection.
const fetchTimeout = fetchMaxWait + 30*time.Second

// fetcher reads one partition for one generation.
type fetcher struct {
	c         *Consumer
	epoch     uint64
	partition int
	// next is the next offset to fetch: absolute, or kafka.FirstOffset /
	// kafka.LastOffset until resolved.
	next int64
	dec  *schemas.EventDecoder
	log  *zap.Logger
}

// run fetches until the generation ends, retrying failures with backoff.
// It returns only once ctx has ended: kafka-go ends the whole generation
// when any function it started returns.
func (f *fetcher) run(ctx context.Context) {
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(0))
	for ctx.Err() == nil {
		stop, err := f.fetchLoop(ctx, bo)
		if stop || ctx.Err() != nil {
			break
		}
		wait := bo.NextBackOff()
		f.log.Warn("fetch failed; retrying", zap.Error(err), zap.Int64("offset", f.next), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	<-ctx.Done()
}

// fetchLoop connects to the partition leader and fetches until an error
// (returned, to be retried) or until the fetcher must stop (stop true).
func (f *fetcher) fetchLoop(ctx context.Context, bo backoff.BackOff) (stop bool, err error) {
	c := f.c
	conn, err := f.dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	// Closing the connection is what interrupts a fetch in flight when the
	// generation ends.
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	if err := f.seek(conn); err != nil {
		return false, err
	}
	var ev schemas.Event
	for {
		if err := conn.SetReadDeadline(time.Now().Add(fetchTimeout)); err != nil {
			return false, fmt.Errorf("set read deadline: %w", err)
		}
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: c.cfg.FetchMaxBytes, MaxWait: fetchMaxWait})
		fetched := time.Now()
		read := 0
		// Records are decoded as they are read off the connection, so a
		// fetcher held by back-pressure holds one record, not a whole fetch
		// response (the rest waits in the socket).
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			rec := Record{Partition: int32(f.partition), Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time, Fetched: fetched}
			derr := f.dec.Decode(m.Key, m.Value, m.Time, &ev)
			added, waited := c.add(ctx, f.epoch, &rec, &ev, derr)
			if !added {
				batch.Close()
				return true, nil
			}
			f.next = m.Offset + 1
			read++
			if waited {
				// The wait may have been long: give the rest of the
				// response a fresh deadline rather than fail it.
				if err := conn.SetReadDeadline(time.Now().Add(fetchTimeout)); err != nil {
					batch.Close()
					return false, fmt.Errorf("set read deadline: %w", err)
				}
			}
		}
		if read > 0 {
			bo.Reset()
		}
		if next := batch.Offset(); next > f.next {
			f.next = next // past records removed by compaction at the end of the batch
		}
		fetchErr := batch.Close()

		switch {
		case fetchErr == nil:
		case errors.Is(fetchErr, kafka.RequestTimedOut) && read == 0:
			// kafka-go's word for a fetch that found no new records within
			// fetchMaxWait: poll again. (After records, the same code means
			// the read deadline passed mid-response: reconnect, below.)
		case errors.Is(fetchErr, kafka.OffsetOutOfRange):
			if err := f.resetOutOfRange(conn); err != nil {
				return false, err
			}
		default:
			return false, fmt.Errorf("fetch %s/%d at offset %d: %w", c.cfg.Topic, f.partition, f.next, fetchErr)
		}
	}
}

// dial connects to the partition's leader through the first broker that
// answers.
func (f *fetcher) dial(ctx context.Context) (*kafka.Conn, error) {
	var errs []error
	for _, b := range f.c.cfg.Brokers {
		conn, err := f.c.dialer.DialLeader(ctx, "tcp", b, f.c.cfg.Topic, f.partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dial leader of %s/%d: %w", f.c.cfg.Topic, f.partition, errors.Join(errs...))
}

// seek resolves a relative start offset and positions conn at f.next,
// resetting it when it is out of range.
func (f *fetcher) seek(conn *kafka.Conn) error {
	var err error
	switch f.next {
	case kafka.FirstOffset:
		f.next, err = conn.ReadFirstOffset()
	case kafka.LastOffset:
		f.next, err = conn.ReadLastOffset()
	}
	if err != nil {
		return fmt.Errorf("read start offset of %s/%d: %w", f.c.cfg.Topic, f.partition, err)
	}
	_, err = conn.Seek(f.next, kafka.SeekAbsolute) // checks the offset against the partition's range
	if errors.Is(err, kafka.OffsetOutOfRange) {
		return f.resetOutOfRange(conn)
	}
	if err != nil {
		return fmt.Errorf("seek %s/%d to offset %d: %w", f.c.cfg.Topic, f.partition, f.next, err)
	}
	return nil
}

// resetOutOfRange moves f.next into the partition's range: to its first
// offset when records before it were deleted (retention), else (the
// partition is shorter than the offset, e.g. the topic was re-created) as
// StartOffset says.
func (f *fetcher) resetOutOfRange(conn *kafka.Conn) error {
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return fmt.Errorf("read offset range of %s/%d: %w", f.c.cfg.Topic, f.partition, err)
	}
	from := f.next
	switch {
	case from < first:
		f.next = first
		f.c.mu.Lock()
		f.c.truncated += first - from
		f.c.mu.Unlock()
		f.log.Error("input records lost: the broker deleted them before they were read "+
			"(the topic's retention is shorter than the consumer's lag, or than the age of the records' timestamps)",
			zap.Int64("offset", from), zap.Int64("first", first), zap.Int64("skipped", first-from))
	default: // past the end: the partition is shorter than what was read or committed
		f.next = first
		if f.c.startAt == kafka.LastOffset {
			f.next = last
		}
		f.log.Warn("offset is past the partition's end; restarting where start_offset says",
			zap.Int64("offset", from), zap.Int64("last", last), zap.Int64("restart", f.next),
			zap.String("start_offset", f.c.cfg.StartOffset))
	}
	if _, err := conn.Seek(f.next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return fmt.Errorf("seek %s/%d to offset %d: %w", f.c.cfg.Topic, f.partition, f.next, err)
	}
	return nil
}
