package scorers

import (
	"fmt"
	"testing"

	"github.com/recstream/recstream/schemas"
)

// testEvent is one input event of a test batch.
type testEvent struct {
	user, item string
	typ        uint8
	ts         int64
	partition  int32
	offset     int64
}

// makeBatch builds an EventBatch of evs (log time = ts + 5).
func makeBatch(tb testing.TB, evs []testEvent) *schemas.EventBatch {
	tb.Helper()
	b := schemas.NewEventBuilder(nil)
	defer b.Release()
	for _, e := range evs {
		ev := schemas.Event{
			EventID: []byte(fmt.Sprintf("%d-%d", e.partition, e.offset)),
			UserID:  []byte(e.user),
			ItemID:  []byte(e.item),
			Type:    e.typ,
			TsMs:    e.ts,
		}
		b.Append(&ev, e.partition, e.offset, e.ts+5)
	}
	return &schemas.EventBatch{Topic: "events", Events: b.NewRecord(), Records: len(evs)}
}
