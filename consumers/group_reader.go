package consumers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/recstream/recstream/schemas"
)

// ErrClosed is returned by Next and Commit after Close.
var ErrClosed = errors.New("consumers: consumer closed")

// Consumer reads the input topic as a member of a Kafka consumer group and
// returns micro-batches of decoded events and rejected records.
//
// Membership and partition assignment use kafka-go's group API; each
// assigned partition is fetched in bulk on its own connection to the
// partition leader, its records decoded and validated on the fetching
// goroutine and appended to one shared Batcher. Batches come out of Next in
// input order per partition.
//
// Back-pressure and memory: when MaxBufferedBatches complete batches wait
// for Next, fetchers stop appending and wait. At most MaxBufferedBatches + 1
// batches (the one being built) are held, each at most Batch.MaxBytes of
// record values (or one record, when a record alone is larger) plus its
// Arrow columns. Fetchers decode records as they read them off the
// connection, so a waiting fetcher holds one record; the rest of its fetch
// response waits in the socket. Nothing grows while Next is not called.
//
// Offsets: Commit commits through the current group generation. Records
// are delivered at least once: after a crash or a rebalance, a partition
// restarts at its committed offset, so records returned by Next but not yet
// committed are read again by whoever owns the partition next. Within one
// Consumer, a partition that stays assigned across a rebalance resumes after
// the last record Next returned, so this instance does not return a record
// twice.
//
// Error classes: Next returns ctx.Err() or ErrClosed; broker and network
// errors while fetching are retried with backoff and logged, never
// returned; a partition whose start offset has been deleted by retention
// restarts at its first available offset: the records skipped are lost
// before recstream could see them, so they are logged as an error and
// counted (ConsumerStats.Truncated).
type Consumer struct {
	cfg     ReaderConfig
	log     *zap.Logger
	dialer  *kafka.Dialer
	group   *kafka.ConsumerGroup
	startAt int64 // kafka.FirstOffset or kafka.LastOffset

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the membership loop exits

	mu sync.Mutex
	// changed is closed and replaced whenever something a waiter may wait
	// for happens: a batch is queued or taken, the batch being built gets
	// its first record, a generation starts or ends, the consumer closes.
	changed chan struct{}
	closed  bool
	// epoch changes whenever a generation starts or ends: a fetcher whose
	// epoch is stale stops appending.
	epoch   uint64
	gen     *kafka.Generation // nil between generations
	batcher *Batcher
	ready   []*schemas.EventBatch // complete batches for Next, oldest first
	// assigned holds the partitions of the current generation.
	assigned map[int]bool
	// delivered is, per partition owned, the offset after the last record
	// Next returned: where to resume if the partition stays assigned.
	delivered map[int]int64
	// committed is, per partition owned, the last offset committed (or
	// found committed when the generation started); older commits are
	// skipped.
	committed map[int]int64
	// resume is, when the state was restored (ReaderConfig.ResumeFrom set),
	// the position of the state per partition: ResumeFrom moved on by what
	// Next returned. Nil when starts follow the committed offsets.
	resume map[int]int64
	// truncated counts records that the broker deleted (retention) before
	// this consumer read them: they can be neither applied nor
	// dead-lettered, so they are counted and logged as errors.
	truncated int64
}

// NewConsumer checks cfg, checks that the input topic exists (it waits up
// to 30s for the brokers to answer), and starts joining the consumer group.
// Partitions are fetched once the group assigns them; call Next to receive
// batches and Close to leave the group. log nil means no logging.
func NewConsumer(cfg ReaderConfig, log *zap.Logger) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID))
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := checkTopic(ctx, dialer, cfg.Brokers, cfg.Topic); err != nil {
		return nil, err
	}

	startAt := int64(kafka.FirstOffset)
	if cfg.StartOffset == StartLatest {
		startAt = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    cfg.GroupID,
		Brokers:               cfg.Brokers,
		Dialer:                dialer,
		Topics:                []string{cfg.Topic},
		HeartbeatInterval:     cfg.HeartbeatInterval,
		SessionTimeout:        cfg.SessionTimeout,
		WatchPartitionChanges: true,
		StartOffset:           startAt,
		Logger:                kafkaLogger(log, zap.DebugLevel),
		// Rebalances make kafka-go log errors routinely; run logs what matters.
		ErrorLogger: kafkaLogger(log, zap.InfoLevel),
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer group %s: %w", cfg.GroupID, err)
	}
	c := &Consumer{
		cfg:       cfg,
		log:       log,
		dialer:    dialer,
		group:     group,
		startAt:   startAt,
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
		batcher:   NewBatcher(cfg.Topic, cfg.Batch, nil),
		assigned:  map[int]bool{},
		delivered: map[int]int64{},
		committed: map[int]int64{},
		resume:    maps.Clone(cfg.ResumeFrom),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// checkTopic fails with an explanation when topic does not exist.
func checkTopic(ctx context.Context, dialer *kafka.Dialer, brokers []string, topic string) error {
	var errs []error
	for _, b := range brokers {
		parts, err := dialer.LookupPartitions(ctx, "tcp", b, topic)
		switch {
		case errors.Is(err, kafka.UnknownTopicOrPartition) || (err == nil && len(parts) == 0):
			return fmt.Errorf("input topic %q does not exist on %s: create it before starting recstream "+
				"(it does not create its input topic; partitions bound its parallelism)", topic, b)
		case err == nil:
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, err))
	}
	return fmt.Errorf("look up input topic %q: %w", topic, errors.Join(errs...))
}

// kafkaLogger adapts a zap logger to kafka-go's Printf logger at level,
// formatting only when the level is enabled.
func kafkaLogger(log *zap.Logger, level zapcore.Level) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if ce := log.Check(level, "kafka-go"); ce != nil {
			ce.Write(zap.String("kafka", fmt.Sprintf(format, args...)))
		}
	})
}

// run is the membership loop: it takes each generation kafka-go's group
// joins and starts its fetchers.
func (c *Consumer) run() {
	defer close(c.done)
	for {
		gen, err := c.group.Next(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			// kafka-go has already backed off (JoinGroupBackoff) where the
			// error calls for it.
			c.log.Warn("join consumer group failed; retrying", zap.Error(err))
			continue
		}
		c.startGeneration(gen)
	}
}

// startGeneration takes over gen's assignment: it drops whatever is
// buffered (it belongs to the previous generation and will be read again),
// works out where each partition starts, and starts one fetcher per
// partition plus a watcher that notices the generation's end.
func (c *Consumer) startGeneration(gen *kafka.Generation) {
	assignments := gen.Assignments[c.cfg.Topic]
	starts := make(map[int]int64, len(assignments))

	c.mu.Lock()
	c.epoch++
	epoch := c.epoch
	c.dropBufferedLocked()
	c.gen = gen
	c.assigned = make(map[int]bool, len(assignments))
	for _, a := range assignments {
		c.assigned[a.ID] = true
		start := a.Offset // committed, or kafka.FirstOffset/LastOffset when none
		switch d, ok := c.delivered[a.ID]; {
		case c.resume != nil:
			// Restored state: start where the state stands, whatever was
			// committed meanwhile, so that no event escapes the state.
			start = kafka.FirstOffset
			if r, ok := c.resume[a.ID]; ok {
				start = r
			}
		case ok && (start < 0 || d > start):
			start = d // kept across the rebalance: resume after what Next returned
		}
		starts[a.ID] = start
		if a.Offset >= 0 && a.Offset > c.committed[a.ID] {
			c.committed[a.ID] = a.Offset
		}
	}
	for p := range c.delivered {
		if !c.assigned[p] {
			delete(c.delivered, p)
		}
	}
	for p := range c.committed {
		if !c.assigned[p] {
			delete(c.committed, p)
		}
	}
	c.broadcastLocked()
	c.mu.Unlock()

	parts := make([]int, 0, len(starts))
	for p := range starts {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	c.log.Info("partitions assigned", zap.Int32("generation", gen.ID), zap.Ints("partitions", parts))

	gen.Start(func(ctx context.Context) {
		<-ctx.Done()
		c.endGeneration(epoch)
	})
	for _, p := range parts {
		f := &fetcher{c: c, epoch: epoch, partition: p, next: starts[p],
			dec: schemas.NewEventDecoder(c.cfg.Limits), log: c.log.With(zap.Int("partition", p))}
		gen.Start(f.run)
	}
}

// endGeneration drops what the ended generation buffered: its partitions
// may move, and records not yet returned by Next will be read again by
// their next owner (or by this instance, from where Next left off).
func (c *Consumer) endGeneration(epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	c.epoch++
	c.gen = nil
	c.assigned = map[int]bool{}
	c.dropBufferedLocked()
	c.broadcastLocked()
}

func (c *Consumer) dropBufferedLocked() {
	for _, b := range c.ready {
		b.Release()
	}
	c.ready = nil
	c.batcher.Reset()
}

func (c *Consumer) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Next returns the next batch, waiting until one is complete: a batch is
// complete when it reaches Batch.MaxRows or Batch.MaxBytes, or when
// Batch.Linger has passed since its first record was fetched. The caller
// owns the batch (Release it) and commits its Commit positions with Commit
// once every sink has acknowledged it.
//
// Next returns ctx.Err() when ctx ends first, and ErrClosed after Close.
// It is meant for one goroutine.
func (c *Consumer) Next(ctx context.Context) (*schemas.EventBatch, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// A stopped caller takes no more batches, not even buffered ones:
		// a soft stop must not turn into draining the whole buffer. What
		// is left is read again from the last commit.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		var b *schemas.EventBatch
		var wait <-chan time.Time
		if len(c.ready) > 0 {
			b = c.ready[0]
			c.ready[0] = nil
			c.ready = c.ready[1:]
			if c.batcher.Full() { // a fetcher left it for want of room
				c.ready = append(c.ready, c.batcher.Flush())
			}
		} else if deadline, ok := c.batcher.Deadline(); ok {
			if d := time.Until(deadline); d <= 0 || c.batcher.Full() {
				b = c.batcher.Flush()
			} else {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				wait = timer.C
			}
		}
		if b != nil {
			for _, po := range b.Commit {
				c.delivered[po.Partition] = po.Offset
				if c.resume != nil {
					c.resume[po.Partition] = po.Offset
				}
			}
			c.broadcastLocked() // room for fetchers
			c.mu.Unlock()
			return b, nil
		}
		changed := c.changed
		c.mu.Unlock()

		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-wait:
		}
	}
}

// Commit commits pos, the next offsets to read per partition, through the
// current group generation. The pipeline calls it only after every sink has
// acknowledged the batch that holds those records.
//
// Positions of partitions this instance no longer owns are skipped (their
// new owner reads them again from the last commit), as are positions at or
// before what was already committed. Between generations Commit waits for
// the next one; failed commits are retried with backoff until ctx ends.
func (c *Consumer) Commit(ctx context.Context, pos []schemas.PartitionOffset) error {
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(0))
	var lastErr error
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		gen, changed := c.gen, c.changed
		offsets := make(map[int]int64, len(pos))
		for _, po := range pos {
			if c.assigned[po.Partition] && po.Offset > c.committed[po.Partition] {
				offsets[po.Partition] = po.Offset
			}
		}
		c.mu.Unlock()

		var retry <-chan time.Time
		if gen != nil {
			if len(offsets) == 0 {
				return nil
			}
			err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: offsets})
			if err == nil {
				c.mu.Lock()
				if c.gen == gen {
					for p, o := range offsets {
						if o > c.committed[p] {
							c.committed[p] = o
						}
					}
				}
				c.mu.Unlock()
				return nil
			}
			lastErr = err
			wait := bo.NextBackOff()
			c.log.Warn("commit offsets failed; retrying", zap.Error(err), zap.Duration("in", wait))
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("commit offsets of %s: %w (last error: %v)", c.cfg.Topic, ctx.Err(), lastErr)
			}
			return fmt.Errorf("commit offsets of %s: waiting for a group generation: %w", c.cfg.Topic, ctx.Err())
		case <-changed: // a generation started or ended: try with the new one
		case <-retry:
		}
	}
}

// Topic is the input topic.
func (c *Consumer) Topic() string { return c.cfg.Topic }

// Close leaves the group, stops the fetchers and frees buffered batches.
// Batches already returned by Next stay valid; their offsets can no longer
// be committed by this Consumer. Close is idempotent.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.broadcastLocked()
	c.mu.Unlock()

	c.cancel()
	err := c.group.Close() // ends the generation, waits for its fetchers, leaves the group
	<-c.done

	c.mu.Lock()
	c.dropBufferedLocked()
	c.batcher.Release()
	c.gen = nil
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("leave consumer group %s: %w", c.cfg.GroupID, err)
	}
	return nil
}

// add appends one decoded record to the shared batcher, first making room
// when the record does not fit: it queues the current batch if fewer than
// MaxBufferedBatches wait, else waits for Next (waited reports that). added
// is false when the fetcher must stop: its generation ended, the consumer
// closed, or ctx ended.
func (c *Consumer) add(ctx context.Context, epoch uint64, rec *Record, ev *schemas.Event, derr *schemas.DecodeError) (added, waited bool) {
	c.mu.Lock()
	for {
		if c.closed || c.epoch != epoch {
			c.mu.Unlock()
			return false, waited
		}
		if c.batcher.Fits(len(rec.Key) + len(rec.Value)) {
			break
		}
		if len(c.ready) < c.cfg.MaxBufferedBatches {
			c.ready = append(c.ready, c.batcher.Flush())
			c.broadcastLocked()
			continue
		}
		changed := c.changed
		c.mu.Unlock()
		waited = true
		select {
		case <-ctx.Done():
			return false, waited
		case <-changed:
		}
		c.mu.Lock()
	}
	notify := c.batcher.Records() == 0 // Next must arm the linger timer
	if derr == nil {
		c.batcher.AddEvent(rec, ev)
	} else {
		c.batcher.AddDeadLetter(rec, derr.Reason, derr.Detail)
	}
	if c.batcher.Full() && len(c.ready) < c.cfg.MaxBufferedBatches {
		c.ready = append(c.ready, c.batcher.Flush())
		notify = true
	}
	if notify {
		c.broadcastLocked()
	}
	c.mu.Unlock()
	return true, waited
}
