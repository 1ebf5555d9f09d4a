// Package rebuild restores one sink from what another holds: the ClickHouse
// recommendations table from the compacted output topic (runbook §3).
package rebuild

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/schemas"
)

// RecommendationWriter stores recommendation batches idempotently
// (sinks.ClickHouseSink).
type RecommendationWriter interface {
	Write(ctx context.Context, events *schemas.EventBatch, recs *schemas.RecommendationBatch) error
}

// ClickHouseFromTopic copies every record of the output topic, up to the
// end offsets it finds when it starts, into w, chunk records per write, and
// returns how many it copied. cl must consume topic from its start
// (kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())).
// progress, when not nil, gets the records read and the total. Older
// versions of a user are written too: ClickHouse's ReplacingMergeTree
// collapses them under FINAL, as it does for the live pipeline's writes.
func ClickHouseFromTopic(ctx context.Context, cl *kgo.Client, topic string, w RecommendationWriter, chunk int,
	progress func(done, total int)) (copied int64, err error) {
	if chunk <= 0 {
		return 0, fmt.Errorf("chunk: must be > 0, got %d", chunk)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	end := map[int32]int64{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset; total += o.Offset })
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, int(total))

	emptyEvents := &schemas.EventBatch{Events: schemas.NewEventBuilder(nil).NewRecord()}
	defer emptyEvents.Release()
	b := schemas.NewRecommendationBuilder(nil)
	defer b.Release()
	var (
		dec     schemas.RecommendationDecoder
		rec     schemas.Recommendation
		pending int
		reached = map[int32]int64{}
		seen    int64
	)
	flush := func() error {
		if pending == 0 {
			return nil
		}
		recs := &schemas.RecommendationBatch{Recs: b.NewRecord()}
		defer recs.Release()
		if err := w.Write(ctx, emptyEvents, recs); err != nil {
			return fmt.Errorf("insert %d recommendations: %w", pending, err)
		}
		copied += int64(pending)
		pending = 0
		return nil
	}
	done := func() bool {
		for p, e := range end {
			if reached[p] < e {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return copied, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			return copied, ferr
		}
		var decodeErr error
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			reached[r.Partition] = r.Offset + 1
			if r.Offset >= end[r.Partition] || decodeErr != nil {
				return
			}
			if err := dec.Decode(r.Value, &rec); err != nil {
				decodeErr = fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			b.Append(&rec)
			pending++
		})
		if decodeErr != nil {
			return copied, decodeErr
		}
		if pending >= chunk {
			if err := flush(); err != nil {
				return copied, err
			}
		}
		progress(int(seen), 0)
	}
	return copied, flush()
}
