package benchmark

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/sinks"
)

// Databases the ClickHouse stage writes into: one for the sink, one for
// the raw inserts, so that each table sees only its own writer.
const (
	sinkDatabase     = "bench_sink"
	rawDatabase      = "bench_raw"
	pipelineDatabase = "bench_pipeline"
)

// rawEvents and rawRecs are the rows of one batch as plain Go values, the
// way a hand-written clickhouse-go program holds them, in the column order
// of the tables. They are built before any clock starts.
type rawEvents struct {
	eventID, userID, itemID, typ, session, query, category []string
	ts                                                     []time.Time
	tsMs, offset                                           []int64
	price                                                  []*float64
	partition                                              []int32
}

type rawRecs struct {
	userID, model       []string
	items               [][]string
	scores              [][]float32
	version             []uint64
	eventTs, producedAt []time.Time
	eventTsMs, offset   []int64
	partition           []int32
}

func toRawEvents(b *schemas.EventBatch, types []string) rawEvents {
	rows := schemas.Rows(b.Events)
	n := int(b.Events.NumRows())
	e := rawEvents{
		eventID: make([]string, n), userID: make([]string, n), itemID: make([]string, n), typ: make([]string, n),
		session: make([]string, n), query: make([]string, n), category: make([]string, n),
		ts: make([]time.Time, n), tsMs: make([]int64, n), offset: make([]int64, n),
		price: make([]*float64, n), partition: make([]int32, n),
	}
	for i := range n {
		e.eventID[i] = rows.EventID.Value(i)
		e.userID[i] = rows.UserID.Value(i)
		e.itemID[i] = rows.ItemID.Value(i)
		e.typ[i] = types[rows.Type.Value(i)]
		e.session[i] = rows.SessionID.Value(i)
		e.query[i] = rows.Query.Value(i)
		e.category[i] = rows.Category.Value(i)
		ms := int64(rows.Ts.Value(i))
		e.ts[i], e.tsMs[i] = time.UnixMilli(ms), ms
		if !rows.Price.IsNull(i) {
			p := rows.Price.Value(i)
			e.price[i] = &p
		}
		e.partition[i], e.offset[i] = rows.Partition.Value(i), rows.Offset.Value(i)
	}
	return e
}

func toRawRecs(b *schemas.RecommendationBatch) rawRecs {
	rows := schemas.RecRows(b.Recs)
	n := int(b.Recs.NumRows())
	out := rawRecs{
		userID: make([]string, n), model: make([]string, n), items: make([][]string, n), scores: make([][]float32, n),
		version: make([]uint64, n), eventTs: make([]time.Time, n), producedAt: make([]time.Time, n),
		eventTsMs: make([]int64, n), offset: make([]int64, n), partition: make([]int32, n),
	}
	for i := range n {
		rec := rows.Row(i)
		out.userID[i], out.model[i], out.items[i], out.scores[i] = rec.UserID, rec.ModelVersion, rec.Items, rec.Scores
		out.version[i] = rec.Version
		out.eventTs[i], out.eventTsMs[i], out.producedAt[i] = time.UnixMilli(rec.EventTsMs), rec.EventTsMs, time.UnixMilli(rec.ProducedAtMs)
		out.partition[i], out.offset[i] = rec.Partition, rec.Offset
	}
	return out
}

// rawInsert writes one batch's events and recommendations with plain
// clickhouse-go batches: row by row (batch.Append, the usual code) or
// column by column (Column(i).Append of whole slices).
type rawInsert func(ctx context.Context, conn driver.Conn, db string, ev *rawEvents, recs *rawRecs) error

func insertRows(ctx context.Context, conn driver.Conn, db string, ev *rawEvents, recs *rawRecs) error {
	if n := len(ev.eventID); n > 0 {
		b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.events (%s)", db, schemas.ClickHouseEventsColumns))
		if err != nil {
			return fmt.Errorf("prepare events insert: %w", err)
		}
		for i := range n {
			if err := b.Append(ev.eventID[i], ev.userID[i], ev.itemID[i], ev.typ[i], ev.ts[i], ev.tsMs[i],
				ev.session[i], ev.query[i], ev.price[i], ev.category[i], ev.partition[i], ev.offset[i]); err != nil {
				b.Abort()
				return fmt.Errorf("append event row %d: %w", i, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert %d events: %w", n, err)
		}
	}
	if n := len(recs.userID); n > 0 {
		b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.recommendations (%s)", db, schemas.ClickHouseRecommendationsColumns))
		if err != nil {
			return fmt.Errorf("prepare recommendations insert: %w", err)
		}
		for i := range n {
			if err := b.Append(recs.userID[i], recs.items[i], recs.scores[i], recs.model[i], recs.version[i],
				recs.eventTs[i], recs.eventTsMs[i], recs.producedAt[i], recs.partition[i], recs.offset[i]); err != nil {
				b.Abort()
				return fmt.Errorf("append recommendation row %d: %w", i, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert %d recommendations: %w", n, err)
		}
	}
	return nil
}

func insertColumns(ctx context.Context, conn driver.Conn, db string, ev *rawEvents, recs *rawRecs) error {
	send := func(table, columns string, cols []any) error {
		b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, table, columns))
		if err != nil {
			return fmt.Errorf("prepare %s insert: %w", table, err)
		}
		for i, c := range cols {
			if err := b.Column(i).Append(c); err != nil {
				b.Abort()
				return fmt.Errorf("append %s column %d: %w", table, i, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		return nil
	}
	if len(ev.eventID) > 0 {
		if err := send(schemas.ClickHouseEventsTable, schemas.ClickHouseEventsColumns, []any{ev.eventID, ev.userID, ev.itemID,
			ev.typ, ev.ts, ev.tsMs, ev.session, ev.query, ev.price, ev.category, ev.partition, ev.offset}); err != nil {
			return err
		}
	}
	if len(recs.userID) > 0 {
		return send(schemas.ClickHouseRecommendationsTable, schemas.ClickHouseRecommendationsColumns, []any{recs.userID, recs.items,
			recs.scores, recs.model, recs.version, recs.eventTs, recs.eventTsMs, recs.producedAt, recs.partition, recs.offset})
	}
	return nil
}

// measureClickHouse writes the scorer's batches (each batch's events and
// its recommendations, as the pipeline does) with the ClickHouse sink and
// with the two raw inserts of the same rows in the same batches, in turns,
// each turn starting once the server has merged the parts of the turns
// before it.
func (r *run) measureClickHouse(ctx context.Context) error {
	if len(r.data.recs) != len(r.data.events) {
		return fmt.Errorf("clickhouse stage: %d recommendation batches for %d event batches", len(r.data.recs), len(r.data.events))
	}
	events, recs := r.sinkBatches()
	sink, err := sinks.NewClickHouseSink(ctx, sinks.ClickHouseConfig{Addr: []string{r.ch.Addr()}, Database: sinkDatabase},
		r.log.Named("clickhouse"))
	if err != nil {
		return fmt.Errorf("start clickhouse sink: %w", err)
	}
	defer sink.Close()
	r.report.Machine.ClickHouse = sink.ServerVersion()
	conn := r.chConn
	ddl, err := schemas.ClickHouseDDL(schemas.ClickHouseDDLOptions{Database: rawDatabase, Modern: sink.ModernTypes()})
	if err != nil {
		return err
	}
	for _, stmt := range ddl {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create raw insert tables: %w", err)
		}
	}

	types := schemas.DefaultEventTypes()
	evRows := make([]rawEvents, len(events))
	recRows := make([]rawRecs, len(recs))
	rows := 0
	for i := range events {
		evRows[i] = toRawEvents(events[i], types)
		recRows[i] = toRawRecs(recs[i])
		rows += len(evRows[i].eventID) + len(recRows[i].userID)
	}
	r.report.Data.ClickHouseRows = rows

	note := fmt.Sprintf("%d rows (events + recommendations) in %d inserts per table, the pipeline's batches", rows, len(events))
	writer := func(id, name string, ceiling bool, write func(i int) error) contender {
		return contender{
			row: Row{ID: id, Stage: StageClickHouse, Name: name, Unit: "rows/s", Ceiling: ceiling, Note: note},
			run: func(ctx context.Context, _ int) (float64, coreUse, error) {
				r.quiesce(ctx)
				u := r.startUsage()
				start := time.Now()
				for i := range events {
					if err := write(i); err != nil {
						return 0, coreUse{}, fmt.Errorf("batch %d: %w", i, err)
					}
				}
				return float64(rows) / time.Since(start).Seconds(), u.read(), nil
			},
		}
	}
	cs := []contender{
		writer("clickhouse.sink", "sinks.ClickHouseSink.Write (from Arrow)", false, func(i int) error {
			return sink.Write(ctx, events[i], recs[i])
		}),
		writer("clickhouse.raw-rows", "raw clickhouse-go insert, batch.Append per row", true, func(i int) error {
			return insertRows(ctx, conn, rawDatabase, &evRows[i], &recRows[i])
		}),
		writer("clickhouse.raw-columns", "raw clickhouse-go insert, Column(i).Append per column", true, func(i int) error {
			return insertColumns(ctx, conn, rawDatabase, &evRows[i], &recRows[i])
		}),
	}
	cores, err := r.measureInTurns(ctx, cs)
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	// Their merges would weigh on the stages after this one.
	r.dropDatabase(ctx, sinkDatabase)
	r.dropDatabase(ctx, rawDatabase)
	for k, c := range cs {
		if rate := r.report.Row(c.row.ID).Value.Median; rate > 0 {
			r.chCPU[c.row.ID] = cpuPerRow{client: NewFigure(cores[k].self).Median / rate * 1e6,
				server: NewFigure(cores[k].clickhouse).Median / rate * 1e6}
		}
	}
	if best := r.report.markBest(StageClickHouse); best != nil {
		r.report.compare("clickhouse.sink", best.ID)
	}
	return nil
}

// cpuPerRow is the CPU time a ClickHouse writer cost per million rows, in
// seconds, in this process (client) and in the server.
type cpuPerRow struct{ client, server float64 }
