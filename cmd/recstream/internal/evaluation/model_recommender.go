package evaluation

import (
	"context"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/recstream/recstream/schemas"
)

// BatchScorer is what ModelRecommender needs of a scorers.Scorer: the real
// scoring path of the pipeline, event batch in, recommendations out.
type BatchScorer interface {
	Score(ctx context.Context, batch *schemas.EventBatch) (*schemas.RecommendationBatch, error)
}

// ModelRecommender evaluates a model through the pipeline's scorer: each
// Update becomes an Arrow event batch scored by the ONNX model, and a
// user's recommendation is the record the scorer produced after their
// previous event, exactly what the pipeline would have published when the
// event arrived. Its event types must be the dataset's (the default list).
type ModelRecommender struct {
	name    string
	scorer  BatchScorer
	ds      *Dataset
	builder *schemas.EventBuilder
	recs    [][]int32 // user -> latest recommendation, as dataset item indices
	offset  int64     // input position of the next event: only grows
	idBuf   []byte
}

// NewModelRecommender returns a recommender named name that scores ds's
// events with s. Close releases its batch builder (not s).
func NewModelRecommender(name string, s BatchScorer, ds *Dataset) *ModelRecommender {
	return &ModelRecommender{
		name: name, scorer: s, ds: ds,
		builder: schemas.NewEventBuilder(memory.DefaultAllocator),
		recs:    make([][]int32, len(ds.Users)),
	}
}

// Name implements Recommender.
func (m *ModelRecommender) Name() string { return m.name }

// Recommend implements Recommender: the user's latest record, cut to k.
// A user the scorer has not refreshed yet gets nothing.
func (m *ModelRecommender) Recommend(user int32, k int, dst []int32) []int32 {
	r := m.recs[user]
	return append(dst, r[:min(k, len(r))]...)
}

// Update implements Recommender: one Score call for events, every event on
// partition 0 at the next offset (the scorer skips an offset it has
// applied, so offsets only grow).
func (m *ModelRecommender) Update(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	var ev schemas.Event
	for _, e := range events {
		m.idBuf = strconv.AppendInt(append(m.idBuf[:0], 'e'), m.offset, 10)
		ev = schemas.Event{EventID: m.idBuf, UserID: []byte(m.ds.Users[e.User]), Type: e.Type, TsMs: e.TsMs}
		if e.Item != NoItem {
			ev.ItemID = []byte(m.ds.Items[e.Item])
		}
		m.builder.Append(&ev, 0, m.offset, e.TsMs)
		m.offset++
	}
	batch := &schemas.EventBatch{Topic: "evaluation", Events: m.builder.NewRecord(), Records: len(events)}
	defer batch.Release()
	out, err := m.scorer.Score(ctx, batch)
	if err != nil {
		return fmt.Errorf("%s: score %d events: %w", m.name, len(events), err)
	}
	defer out.Release()
	rows := schemas.RecRows(out.Recs)
	for i := range rows.UserID.Len() {
		u, ok := m.ds.userIndex[rows.UserID.Value(i)]
		if !ok {
			return fmt.Errorf("%s: scorer returned a record for unknown user %q", m.name, rows.UserID.Value(i))
		}
		start, end := rows.Items.ValueOffsets(i)
		list := m.recs[u][:0]
		for j := start; j < end; j++ {
			// Every item the model knows came from this dataset's
			// training part, so it has an index.
			if it, ok := m.ds.itemIndex[rows.ItemValues.Value(int(j))]; ok {
				list = append(list, it)
			}
		}
		m.recs[u] = list
	}
	return nil
}

// Close releases the batch builder.
func (m *ModelRecommender) Close() { m.builder.Release() }
