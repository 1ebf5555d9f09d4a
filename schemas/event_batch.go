package schemas

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column positions of EventSchema. Code that reads an event batch uses these
// instead of looking columns up by name on every batch.
const (
	EventColEventID = iota
	EventColUserID
	EventColItemID
	EventColType
	EventColTs
	EventColSessionID
	EventColQuery
	EventColPrice
	EventColCategory
	EventColPartition
	EventColOffset
	EventColLogTs
)

// EventSchema is the Arrow schema of a batch of valid events, one row per
// event, in input order within each partition.
//
// type holds the event type's index in the configured type list (see
// EventLimits.Types), so per-event work compares small integers, not strings.
// partition and offset are the event's input position; log_ts is the Kafka
// record's timestamp, the moment the event entered the log, used for
// event-to-recommendation latency.
var EventSchema = arrow.NewSchema([]arrow.Field{
	{Name: "event_id", Type: arrow.BinaryTypes.String},
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "item_id", Type: arrow.BinaryTypes.String},
	{Name: "type", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_ms},
	{Name: "session_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "query", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "log_ts", Type: arrow.FixedWidthTypes.Timestamp_ms},
}, nil)

// PartitionOffset is an input position: the next offset to read in a
// partition of the input topic. Committing it acknowledges every record
// before it.
type PartitionOffset struct {
	Partition int
	Offset    int64
}

// DeadLetter is an input record that was rejected, with the reason. The
// original bytes are kept unchanged so that a producer can find and fix it.
type DeadLetter struct {
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Time      time.Time
	// Reason is a machine-readable code (see the Reason* constants).
	Reason string
	// Detail is a human-readable explanation, for example the field at fault.
	Detail string
}

// EventBatch is one micro-batch read from the input topic: its valid events
// as an Arrow record, its rejected records, and the input positions to commit
// once every sink has acknowledged the batch.
//
// The batch owns Events; Release frees it.
type EventBatch struct {
	// Topic is the input topic the batch was read from.
	Topic string
	// Events holds the valid events (EventSchema). Never nil; may have 0 rows.
	Events arrow.RecordBatch
	// DeadLetters are the records of this batch that go to the dead-letter topic.
	DeadLetters []DeadLetter
	// Commit lists, for each partition with records in the batch, the offset
	// after the last record of the batch.
	Commit []PartitionOffset
	// Bytes is the total size of the input record keys and values in the
	// batch.
	Bytes int
	// Records counts every input record, valid and dead-lettered.
	Records int
	// FirstFetched is when the first record of the batch was fetched.
	FirstFetched time.Time
}

// Release frees the batch's Arrow memory.
func (b *EventBatch) Release() {
	if b.Events != nil {
		b.Events.Release()
	}
}

// EventRows gives typed access to the columns of an EventSchema record.
// Fetch it once per batch: its accessors do no allocation.
type EventRows struct {
	EventID   *array.String
	UserID    *array.String
	ItemID    *array.String
	Type      *array.Uint8
	Ts        *array.Timestamp
	SessionID *array.String
	Query     *array.String
	Price     *array.Float64
	Category  *array.String
	Partition *array.Int32
	Offset    *array.Int64
	LogTs     *array.Timestamp
}

// Rows returns typed views of the columns of rec, which must have EventSchema.
func Rows(rec arrow.RecordBatch) EventRows {
	return EventRows{
		EventID:   rec.Column(EventColEventID).(*array.String),
		UserID:    rec.Column(EventColUserID).(*array.String),
		ItemID:    rec.Column(EventColItemID).(*array.String),
		Type:      rec.Column(EventColType).(*array.Uint8),
		Ts:        rec.Column(EventColTs).(*array.Timestamp),
		SessionID: rec.Column(EventColSessionID).(*array.String),
		Query:     rec.Column(EventColQuery).(*array.String),
		Price:     rec.Column(EventColPrice).(*array.Float64),
		Category:  rec.Column(EventColCategory).(*array.String),
		Partition: rec.Column(EventColPartition).(*array.Int32),
		Offset:    rec.Column(EventColOffset).(*array.Int64),
		LogTs:     rec.Column(EventColLogTs).(*array.Timestamp),
	}
}

// EventBuilder appends decoded events to an Arrow record. One builder is
// reused for every batch; NewRecord hands the rows over and resets it.
type EventBuilder struct {
	rb        *array.RecordBuilder
	eventID   *array.StringBuilder
	userID    *array.StringBuilder
	itemID    *array.StringBuilder
	typ       *array.Uint8Builder
	ts        *array.TimestampBuilder
	sessionID *array.StringBuilder
	query     *array.StringBuilder
	price     *array.Float64Builder
	category  *array.StringBuilder
	partition *array.Int32Builder
	offset    *array.Int64Builder
	logTs     *array.TimestampBuilder
	rows      int
}

// NewEventBuilder returns a builder for EventSchema records.
func NewEventBuilder(mem memory.Allocator) *EventBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	rb := array.NewRecordBuilder(mem, EventSchema)
	return &EventBuilder{
		rb:        rb,
		eventID:   rb.Field(EventColEventID).(*array.StringBuilder),
		userID:    rb.Field(EventColUserID).(*array.StringBuilder),
		itemID:    rb.Field(EventColItemID).(*array.StringBuilder),
		typ:       rb.Field(EventColType).(*array.Uint8Builder),
		ts:        rb.Field(EventColTs).(*array.TimestampBuilder),
		sessionID: rb.Field(EventColSessionID).(*array.StringBuilder),
		query:     rb.Field(EventColQuery).(*array.StringBuilder),
		price:     rb.Field(EventColPrice).(*array.Float64Builder),
		category:  rb.Field(EventColCategory).(*array.StringBuilder),
		partition: rb.Field(EventColPartition).(*array.Int32Builder),
		offset:    rb.Field(EventColOffset).(*array.Int64Builder),
		logTs:     rb.Field(EventColLogTs).(*array.TimestampBuilder),
	}
}

// Append adds one valid event read at partition/offset with log time logTsMs.
// It copies the event's bytes, so ev may point into a reused buffer.
func (b *EventBuilder) Append(ev *Event, partition int32, offset int64, logTsMs int64) {
	b.eventID.BinaryBuilder.Append(ev.EventID)
	b.userID.BinaryBuilder.Append(ev.UserID)
	b.itemID.BinaryBuilder.Append(ev.ItemID)
	b.typ.Append(ev.Type)
	b.ts.Append(arrow.Timestamp(ev.TsMs))
	appendOptional(b.sessionID, ev.SessionID)
	appendOptional(b.query, ev.Query)
	if ev.HasPrice {
		b.price.Append(ev.Price)
	} else {
		b.price.AppendNull()
	}
	appendOptional(b.category, ev.Category)
	b.partition.Append(partition)
	b.offset.Append(offset)
	b.logTs.Append(arrow.Timestamp(logTsMs))
	b.rows++
}

func appendOptional(sb *array.StringBuilder, v []byte) {
	if v == nil {
		sb.AppendNull()
		return
	}
	sb.BinaryBuilder.Append(v)
}

// Len is the number of rows appended since the last NewRecord.
func (b *EventBuilder) Len() int { return b.rows }

// NewRecord returns the appended rows as a record and resets the builder.
func (b *EventBuilder) NewRecord() arrow.RecordBatch {
	b.rows = 0
	return b.rb.NewRecordBatch()
}

// Release frees the builder.
func (b *EventBuilder) Release() { b.rb.Release() }
