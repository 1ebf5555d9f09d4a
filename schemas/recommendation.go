package schemas

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column positions of RecommendationSchema.
const (
	RecColUserID = iota
	RecColItems
	RecColScores
	RecColModelVersion
	RecColVersion
	RecColEventTs
	RecColProducedAt
	RecColPartition
	RecColOffset
)

// RecommendationSchema is the Arrow schema of a batch of recommendations:
// one row per user refreshed by an input batch.
var RecommendationSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "items", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	{Name: "scores", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	{Name: "model_version", Type: arrow.BinaryTypes.String},
	{Name: "version", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "event_ts", Type: arrow.FixedWidthTypes.Timestamp_ms},
	{Name: "produced_at", Type: arrow.FixedWidthTypes.Timestamp_ms},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// Recommendation is one user's recommendation record, the value written to
// the output topic (JSON, key = user_id) and the row written to ClickHouse.
//
// Records are deterministic: the same input prefix and the same model give
// byte-identical records, so a replay or a retry rewrites the same rows.
// The JSON form is written by AppendRecommendationJSON and read by
// DecodeRecommendationJSON (see RECOMMENDATIONS.md), not by encoding/json.
type Recommendation struct {
	// UserID is the user the record is for; also the Kafka key.
	UserID string
	// Items are the top-K item ids, best first.
	Items []string
	// Scores are the model's scores of Items, in the same order.
	Scores []float32
	// ModelVersion names the model that produced the record.
	ModelVersion string
	// Version only grows per user: it is the input offset of the newest event
	// applied (users are keyed to one partition). ClickHouse's
	// ReplacingMergeTree(version) and the compacted topic keep the newest.
	Version uint64
	// EventTsMs is the event time of the newest event applied (Unix ms).
	EventTsMs int64
	// ProducedAtMs is the log time of the newest input record applied (Unix
	// ms). It comes from the input log, not the wall clock, so that records
	// stay deterministic under replay.
	ProducedAtMs int64
	// Partition and Offset are the input position the record reflects.
	Partition int32
	Offset    int64
}

// RecommendationBatch is the output of scoring one EventBatch.
type RecommendationBatch struct {
	// Recs holds one row per refreshed user (RecommendationSchema).
	Recs arrow.RecordBatch
}

// Release frees the batch's Arrow memory.
func (b *RecommendationBatch) Release() {
	if b.Recs != nil {
		b.Recs.Release()
	}
}

// RecommendationRows gives typed access to the columns of a
// RecommendationSchema record. Fetch it once per batch.
type RecommendationRows struct {
	UserID       *array.String
	Items        *array.List
	ItemValues   *array.String
	Scores       *array.List
	ScoreValues  *array.Float32
	ModelVersion *array.String
	Version      *array.Uint64
	EventTs      *array.Timestamp
	ProducedAt   *array.Timestamp
	Partition    *array.Int32
	Offset       *array.Int64
}

// RecRows returns typed views of the columns of rec, which must have
// RecommendationSchema.
func RecRows(rec arrow.RecordBatch) RecommendationRows {
	items := rec.Column(RecColItems).(*array.List)
	scores := rec.Column(RecColScores).(*array.List)
	return RecommendationRows{
		UserID:       rec.Column(RecColUserID).(*array.String),
		Items:        items,
		ItemValues:   items.ListValues().(*array.String),
		Scores:       scores,
		ScoreValues:  scores.ListValues().(*array.Float32),
		ModelVersion: rec.Column(RecColModelVersion).(*array.String),
		Version:      rec.Column(RecColVersion).(*array.Uint64),
		EventTs:      rec.Column(RecColEventTs).(*array.Timestamp),
		ProducedAt:   rec.Column(RecColProducedAt).(*array.Timestamp),
		Partition:    rec.Column(RecColPartition).(*array.Int32),
		Offset:       rec.Column(RecColOffset).(*array.Int64),
	}
}

// Row returns row i as a Recommendation (allocates; for tests and tools, not
// the hot path).
func (r RecommendationRows) Row(i int) Recommendation {
	start, end := r.Items.ValueOffsets(i)
	items := make([]string, 0, end-start)
	for j := start; j < end; j++ {
		items = append(items, r.ItemValues.Value(int(j)))
	}
	sStart, sEnd := r.Scores.ValueOffsets(i)
	scores := make([]float32, 0, sEnd-sStart)
	for j := sStart; j < sEnd; j++ {
		scores = append(scores, r.ScoreValues.Value(int(j)))
	}
	return Recommendation{
		UserID:       r.UserID.Value(i),
		Items:        items,
		Scores:       scores,
		ModelVersion: r.ModelVersion.Value(i),
		Version:      r.Version.Value(i),
		EventTsMs:    int64(r.EventTs.Value(i)),
		ProducedAtMs: int64(r.ProducedAt.Value(i)),
		Partition:    r.Partition.Value(i),
		Offset:       r.Offset.Value(i),
	}
}

// RecommendationBuilder builds RecommendationSchema records; reuse one per
// scorer.
type RecommendationBuilder struct {
	rb           *array.RecordBuilder
	userID       *array.StringBuilder
	items        *array.ListBuilder
	itemValues   *array.StringBuilder
	scores       *array.ListBuilder
	scoreValues  *array.Float32Builder
	modelVersion *array.StringBuilder
	version      *array.Uint64Builder
	eventTs      *array.TimestampBuilder
	producedAt   *array.TimestampBuilder
	partition    *array.Int32Builder
	offset       *array.Int64Builder
}

// NewRecommendationBuilder returns a builder for RecommendationSchema records.
func NewRecommendationBuilder(mem memory.Allocator) *RecommendationBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	rb := array.NewRecordBuilder(mem, RecommendationSchema)
	items := rb.Field(RecColItems).(*array.ListBuilder)
	scores := rb.Field(RecColScores).(*array.ListBuilder)
	return &RecommendationBuilder{
		rb:           rb,
		userID:       rb.Field(RecColUserID).(*array.StringBuilder),
		items:        items,
		itemValues:   items.ValueBuilder().(*array.StringBuilder),
		scores:       scores,
		scoreValues:  scores.ValueBuilder().(*array.Float32Builder),
		modelVersion: rb.Field(RecColModelVersion).(*array.StringBuilder),
		version:      rb.Field(RecColVersion).(*array.Uint64Builder),
		eventTs:      rb.Field(RecColEventTs).(*array.TimestampBuilder),
		producedAt:   rb.Field(RecColProducedAt).(*array.TimestampBuilder),
		partition:    rb.Field(RecColPartition).(*array.Int32Builder),
		offset:       rb.Field(RecColOffset).(*array.Int64Builder),
	}
}

// Append adds one record. items and scores must have the same length.
func (b *RecommendationBuilder) Append(r *Recommendation) {
	b.userID.Append(r.UserID)
	b.items.Append(true)
	for _, it := range r.Items {
		b.itemValues.Append(it)
	}
	b.scores.Append(true)
	b.scoreValues.AppendValues(r.Scores, nil)
	b.modelVersion.Append(r.ModelVersion)
	b.version.Append(r.Version)
	b.eventTs.Append(arrow.Timestamp(r.EventTsMs))
	b.producedAt.Append(arrow.Timestamp(r.ProducedAtMs))
	b.partition.Append(r.Partition)
	b.offset.Append(r.Offset)
}

// NewRecord returns the appended rows as a record and resets the builder.
func (b *RecommendationBuilder) NewRecord() arrow.RecordBatch { return b.rb.NewRecordBatch() }

// Release frees the builder.
func (b *RecommendationBuilder) Release() { b.rb.Release() }
