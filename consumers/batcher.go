package consumers

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/recstream/recstream/schemas"
)

// Default bounds of BatchConfig.
const (
	DefaultBatchMaxRows  = 5000
	DefaultBatchMaxBytes = 4 << 20
	DefaultBatchLinger   = 50 * time.Millisecond
)

// BatchConfig bounds a micro-batch. A batch is cut when the first bound is
// reached. Rows and bytes count every input record, valid or rejected, so a
// burst of bad records cannot grow a batch past its bounds either.
type BatchConfig struct {
	// MaxRows is the most input records in a batch. Zero means 5000.
	MaxRows int `yaml:"max_rows"`
	// MaxBytes bounds the sum of the record keys and values in a batch: a
	// record that would take the batch past it starts the next batch (a
	// single record larger than MaxBytes makes a batch of its own). Zero
	// means 4 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// Linger is the longest a batch waits for more records after it got
	// its first record; it bounds the latency that batching adds. Zero
	// means 50ms.
	Linger time.Duration `yaml:"linger"`
}

// WithDefaults returns c with every zero field set to its default.
func (c BatchConfig) WithDefaults() BatchConfig {
	c.MaxRows = cmp.Or(c.MaxRows, DefaultBatchMaxRows)
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultBatchMaxBytes)
	c.Linger = cmp.Or(c.Linger, DefaultBatchLinger)
	return c
}

// Validate reports the first out-of-range field of c, naming its yaml key.
// Zero fields are valid: they mean the default.
func (c BatchConfig) Validate() error {
	switch {
	case c.MaxRows < 0:
		return fmt.Errorf("max_rows: must be > 0 (0 means %d), got %d", DefaultBatchMaxRows, c.MaxRows)
	case c.MaxBytes < 0:
		return fmt.Errorf("max_bytes: must be > 0 (0 means %d), got %d", DefaultBatchMaxBytes, c.MaxBytes)
	case c.Linger < 0:
		return fmt.Errorf("linger: must be > 0 (0 means %s), got %s", DefaultBatchLinger, c.Linger)
	}
	return nil
}

// Record is an input record as the batcher needs it. Key and Value may point
// into reused buffers: the batcher copies what it keeps.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// Time is the record's log timestamp.
	Time time.Time
	// Fetched is when the record was fetched; it becomes the batch's
	// FirstFetched, where latency figures start.
	Fetched time.Time
}

// Batcher accumulates decoded events and dead letters into an EventBatch
// until the batch reaches a bound of its BatchConfig. It is not safe for
// concurrent use; the Consumer serialises access to its one batcher.
//
// The caller drives it: Fits before adding a record (false means Flush
// first), Full after adding one (true means Flush now), Deadline for the
// linger.
type Batcher struct {
	cfg     BatchConfig
	topic   string
	events  *schemas.EventBuilder
	dls     []schemas.DeadLetter
	commit  []schemas.PartitionOffset // next offset per partition, in order of first appearance
	last    int                       // index in commit of the last record's partition
	records int
	bytes   int
	first   time.Time // Fetched of the batch's first record, for latency figures
	// started is when the batch got its first record: the linger runs from
	// here, not from first, so that a record held back by back-pressure
	// does not start a batch whose linger has already run out (which cut
	// batches of a few records under load).
	started time.Time
}

// NewBatcher returns a batcher for records of topic. cfg's zero fields take
// their defaults; mem nil means the default Arrow allocator.
func NewBatcher(topic string, cfg BatchConfig, mem memory.Allocator) *Batcher {
	return &Batcher{
		cfg:    cfg.WithDefaults(),
		topic:  topic,
		events: schemas.NewEventBuilder(mem),
	}
}

// Fits reports whether a record of recordBytes (its key and value) can
// join the current batch without taking it past a bound. An empty batch
// takes any record.
func (b *Batcher) Fits(recordBytes int) bool {
	return b.records == 0 || (b.records < b.cfg.MaxRows && b.bytes+recordBytes <= b.cfg.MaxBytes)
}

// Full reports whether the batch has reached a bound and should be flushed.
func (b *Batcher) Full() bool {
	return b.records >= b.cfg.MaxRows || b.bytes >= b.cfg.MaxBytes
}

// Records is the number of input records in the current batch.
func (b *Batcher) Records() int { return b.records }

// Deadline is when the current batch's linger ends; ok is false when the
// batch is empty.
func (b *Batcher) Deadline() (deadline time.Time, ok bool) {
	if b.records == 0 {
		return time.Time{}, false
	}
	return b.started.Add(b.cfg.Linger), true
}

// AddEvent appends a valid event decoded from rec. It copies the event's
// bytes, so ev may point into the decoder's buffers.
func (b *Batcher) AddEvent(rec *Record, ev *schemas.Event) {
	b.events.Append(ev, rec.Partition, rec.Offset, rec.Time.UnixMilli())
	b.track(rec)
}

// AddDeadLetter appends rec as rejected with reason and detail. It copies
// rec's key and value: fetch buffers may be reused.
func (b *Batcher) AddDeadLetter(rec *Record, reason, detail string) {
	b.dls = append(b.dls, schemas.DeadLetter{
		Partition: int(rec.Partition),
		Offset:    rec.Offset,
		Key:       clone(rec.Key),
		Value:     clone(rec.Value),
		Time:      rec.Time,
		Reason:    reason,
		Detail:    detail,
	})
	b.track(rec)
}

// clone copies b, keeping nil apart from empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// track does the bookkeeping common to every record: counts and the next
// offset to commit for its partition. Records of one partition arrive in
// offset order, and runs of one partition are long, so the last partition
// is checked first.
func (b *Batcher) track(rec *Record) {
	if b.records == 0 {
		b.first = rec.Fetched
		b.started = time.Now()
	}
	b.records++
	// Keys count as well as values: a dead letter keeps both, and a hostile
	// producer can make either huge.
	b.bytes += len(rec.Key) + len(rec.Value)
	if b.last < len(b.commit) && b.commit[b.last].Partition == int(rec.Partition) {
		b.commit[b.last].Offset = rec.Offset + 1
		return
	}
	for i := range b.commit {
		if b.commit[i].Partition == int(rec.Partition) {
			b.commit[i].Offset = rec.Offset + 1
			b.last = i
			return
		}
	}
	b.commit = append(b.commit, schemas.PartitionOffset{Partition: int(rec.Partition), Offset: rec.Offset + 1})
	b.last = len(b.commit) - 1
}

// Flush hands the current batch over and starts an empty one; it returns
// nil when the batch is empty. Commit lists partitions in ascending order.
func (b *Batcher) Flush() *schemas.EventBatch {
	if b.records == 0 {
		return nil
	}
	commit := slices.Clone(b.commit)
	slices.SortFunc(commit, func(x, y schemas.PartitionOffset) int { return x.Partition - y.Partition })
	batch := &schemas.EventBatch{
		Topic:        b.topic,
		Events:       b.events.NewRecord(),
		DeadLetters:  b.dls,
		Commit:       commit,
		Bytes:        b.bytes,
		Records:      b.records,
		FirstFetched: b.first,
	}
	b.clear()
	return batch
}

// Reset drops the current batch: its records will be read again.
func (b *Batcher) Reset() {
	if b.records == 0 {
		return
	}
	b.events.NewRecord().Release()
	b.clear()
}

func (b *Batcher) clear() {
	b.dls = nil // handed over with the batch or dropped; never reused
	b.commit = b.commit[:0]
	b.last = 0
	b.records = 0
	b.bytes = 0
	b.first = time.Time{}
	b.started = time.Time{}
}

// Release drops the current batch and frees the builder. The batcher must
// not be used afterwards.
func (b *Batcher) Release() {
	b.Reset()
	b.events.Release()
}
