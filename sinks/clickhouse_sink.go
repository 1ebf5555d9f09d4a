package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// ClickHouseSink writes raw events and recommendations to ClickHouse with
// columnar batch inserts over the native protocol. Its methods are safe for
// concurrent use.
type ClickHouseSink struct {
	cfg         ClickHouseConfig
	log         *zap.Logger
	conn        driver.Conn
	modern      bool // the DDL variant applied (for logs; inserts work on both)
	version     string
	writeEvents bool
	recsInsert  string
	evInsert    string
	scratch     sync.Pool // *chScratch, reused column buffers
}

// NewClickHouseSink connects to the server, applies the DDL (idempotent),
// and checks that it can insert into both tables, so that a sink that could
// not write fails start-up instead of letting the pipeline commit offsets
// for batches it never wrote. The error says which step failed; it wraps
// ErrUnavailable when the server could not be reached.
//
// cfg is completed with WithDefaults and validated. A nil log means
// zap.NewNop().
func NewClickHouseSink(ctx context.Context, cfg ClickHouseConfig, log *zap.Logger) (*ClickHouseSink, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("clickhouse config: %w", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		TLS:  cfg.TLS,
		Addr: cfg.Addr,
		// Tables are always named with their database: the database may not
		// exist until the DDL has run.
		Auth:        clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		Protocol:    clickhouse.Native,
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.ReadTimeout,
		// A connection that sat idle through a server restart is broken;
		// recycle connections often enough that a retry gets a fresh one.
		ConnMaxLifetime: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", cfg.Addr, err)
	}
	s := &ClickHouseSink{
		cfg:         cfg,
		log:         log,
		conn:        conn,
		writeEvents: *cfg.WriteEvents,
		recsInsert: fmt.Sprintf("INSERT INTO %s.%s (%s)", cfg.Database,
			schemas.ClickHouseRecommendationsTable, schemas.ClickHouseRecommendationsColumns),
		evInsert: fmt.Sprintf("INSERT INTO %s.%s (%s)", cfg.Database,
			schemas.ClickHouseEventsTable, schemas.ClickHouseEventsColumns),
	}
	s.scratch.New = func() any { return new(chScratch) }
	if err := s.setUp(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	log.Info("clickhouse sink ready", zap.Strings("addr", cfg.Addr), zap.String("server_version", s.version),
		zap.String("database", cfg.Database), zap.Bool("modern_types", s.modern), zap.Bool("write_events", s.writeEvents))
	return s, nil
}

// setUp runs the start-up steps: version, DDL, schema check, write check.
func (s *ClickHouseSink) setUp(ctx context.Context) error {
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		return classify(fmt.Sprintf("connect to clickhouse %v", s.cfg.Addr), err, isClickHouseTransient)
	}
	switch s.cfg.ModernTypes {
	case "on":
		s.modern = true
	case "auto":
		modern, err := schemas.ClickHouseSupportsModern(s.version)
		if err != nil {
			return err
		}
		s.modern = modern
	}
	if err := s.applyDDL(ctx); err != nil {
		return err
	}
	if err := s.checkColumns(ctx); err != nil {
		return err
	}
	// Open an insert into each table and end it with no rows: the server
	// checks the user's right to write, the table and the column list, and
	// nothing is written.
	for _, q := range []string{s.recsInsert, s.evInsert} {
		batch, err := s.conn.PrepareBatch(ctx, q)
		if err != nil {
			return classify("check clickhouse write access: "+q, err, isClickHouseTransient)
		}
		if err := batch.Close(); err != nil {
			return classify("check clickhouse write access: "+q, err, isClickHouseTransient)
		}
	}
	return nil
}

// applyDDL creates the database and tables if missing.
func (s *ClickHouseSink) applyDDL(ctx context.Context) error {
	stmts, err := schemas.ClickHouseDDL(schemas.ClickHouseDDLOptions{
		Database: s.cfg.Database, Modern: s.modern, EventsTTLDays: s.cfg.EventsTTLDays,
	})
	if err != nil {
		return err
	}
	for _, stmt := range stmts {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return classify(fmt.Sprintf("apply clickhouse DDL (server %s, modern_types=%v): %s",
				s.version, s.modern, firstLine(stmt)), err, isClickHouseTransient)
		}
	}
	return nil
}

// checkColumns verifies that the tables (which may predate this version of
// recstream) have every column the inserts name.
func (s *ClickHouseSink) checkColumns(ctx context.Context) error {
	for _, t := range []struct{ table, cols string }{
		{schemas.ClickHouseRecommendationsTable, schemas.ClickHouseRecommendationsColumns},
		{schemas.ClickHouseEventsTable, schemas.ClickHouseEventsColumns},
	} {
		rows, err := s.conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", s.cfg.Database, t.table)
		if err != nil {
			return classify("read columns of "+s.cfg.Database+"."+t.table, err, isClickHouseTransient)
		}
		have := map[string]bool{}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return fmt.Errorf("read columns of %s.%s: %w", s.cfg.Database, t.table, err)
			}
			have[name] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return classify("read columns of "+s.cfg.Database+"."+t.table, err, isClickHouseTransient)
		}
		var missing []string
		for _, c := range strings.Split(t.cols, ", ") {
			if !have[c] {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("table %s.%s exists without columns %s: it predates this schema; migrate or drop it (see schemas/clickhouse/)",
				s.cfg.Database, t.table, strings.Join(missing, ", "))
		}
	}
	return nil
}

// ServerVersion returns the server's version() as read at start-up.
func (s *ClickHouseSink) ServerVersion() string { return s.version }

// ModernTypes reports whether the sink applied the modern DDL variant.
func (s *ClickHouseSink) ModernTypes() bool { return s.modern }

// Write inserts the batch's valid events into the events table (unless
// WriteEvents is false), then its recommendations into the recommendations
// table, each as one INSERT sent in blocks of at most InsertChunkRows rows.
// It returns when the server has acknowledged every block.
//
// Writing the same batch again adds identical rows, which the tables'
// ReplacingMergeTree engines collapse (read with FINAL). A failure may
// leave some blocks written; retrying the whole batch is correct. Errors
// follow the package's classes: ErrUnavailable for a server that cannot be
// reached or is overloaded, the context's error when ctx ends, fatal
// otherwise. Either argument may be nil.
func (s *ClickHouseSink) Write(ctx context.Context, events *schemas.EventBatch, recs *schemas.RecommendationBatch) error {
	sc := s.scratch.Get().(*chScratch)
	defer s.scratch.Put(sc)
	if s.writeEvents && events != nil && events.Events != nil && events.Events.NumRows() > 0 {
		if err := s.insert(ctx, s.evInsert, int(events.Events.NumRows()), func(b driver.Batch, lo, hi int) error {
			return s.appendEvents(b, sc, schemas.Rows(events.Events), lo, hi)
		}); err != nil {
			return err
		}
	}
	if recs != nil && recs.Recs != nil && recs.Recs.NumRows() > 0 {
		rows := schemas.RecRows(recs.Recs)
		if err := s.insert(ctx, s.recsInsert, int(recs.Recs.NumRows()), func(b driver.Batch, lo, hi int) error {
			return appendRecommendations(b, sc, &rows, lo, hi)
		}); err != nil {
			return err
		}
	}
	return nil
}

// insert runs one INSERT of n rows, appending rows [lo, hi) per block with
// fill and flushing each block.
func (s *ClickHouseSink) insert(ctx context.Context, query string, n int, fill func(b driver.Batch, lo, hi int) error) error {
	what := fmt.Sprintf("insert %d rows into %s", n, strings.Fields(query)[2])
	if err := ctx.Err(); err != nil {
		return s.writeError(ctx, what, err)
	}
	batch, err := s.conn.PrepareBatch(ctx, query)
	if isMissingTable(err) {
		// The server lost its tables (replaced by an empty one, or dropped
		// by hand): create them again and go on; replay rebuilds the rows
		// lost with them.
		s.log.Warn("clickhouse table missing; applying the DDL again", zap.String("query", query), zap.Error(err))
		if err = s.applyDDL(ctx); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		batch, err = s.conn.PrepareBatch(ctx, query)
	}
	if err != nil {
		return s.writeError(ctx, what, err)
	}
	defer batch.Abort() // a no-op once sent; on error it frees the connection
	for lo := 0; lo < n; lo += s.cfg.InsertChunkRows {
		hi := min(lo+s.cfg.InsertChunkRows, n)
		if err := fill(batch, lo, hi); err != nil {
			return fmt.Errorf("%s: append rows %d..%d: %w", what, lo, hi, err)
		}
		if hi < n {
			if err := batch.Flush(); err != nil {
				return s.writeError(ctx, what, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return s.writeError(ctx, what, err)
	}
	return nil
}

func (s *ClickHouseSink) writeError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	return classify(what, err, isClickHouseTransient)
}

// Close closes the connections. Writes in flight fail.
func (s *ClickHouseSink) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("close clickhouse: %w", err)
	}
	return nil
}

// chScratch holds column buffers reused between writes, so a write's
// allocations do not grow with its row count beyond the driver's own.
type chScratch struct {
	strs      []string
	items     []string
	itemPtrs  []*string
	scorePtrs []*float32
	times     []time.Time
	i64       []int64
	prices    []*float64
}

// appendRecommendations appends rows [lo, hi) to b in the column order of
// schemas.ClickHouseRecommendationsColumns.
func appendRecommendations(b driver.Batch, sc *chScratch, r *schemas.RecommendationRows, lo, hi int) error {
	bulk := func(v any) func(driver.BatchColumn) error {
		return func(c driver.BatchColumn) error { return c.Append(v) }
	}
	// Each bulk value is built only when its column is appended: the string
	// and time scratch slices are shared between columns.
	cols := []struct {
		name   string
		append func(driver.BatchColumn) error
	}{
		{"user_id", func(c driver.BatchColumn) error { return c.Append(stringValues(sc, r.UserID, lo, hi)) }},
		{"items", func(c driver.BatchColumn) error { return appendItems(c, sc, r, lo, hi) }},
		{"scores", func(c driver.BatchColumn) error { return appendScores(c, sc, r, lo, hi) }},
		{"model_version", func(c driver.BatchColumn) error { return c.Append(stringValues(sc, r.ModelVersion, lo, hi)) }},
		{"version", bulk(r.Version.Uint64Values()[lo:hi])},
		{"event_ts", func(c driver.BatchColumn) error { return c.Append(timeValues(sc, r.EventTs.TimestampValues(), lo, hi)) }},
		{"event_ts_ms", func(c driver.BatchColumn) error { return c.Append(msValues(sc, r.EventTs.TimestampValues(), lo, hi)) }},
		{"produced_at", func(c driver.BatchColumn) error {
			return c.Append(timeValues(sc, r.ProducedAt.TimestampValues(), lo, hi))
		}},
		{"src_partition", bulk(r.Partition.Int32Values()[lo:hi])},
		{"src_offset", bulk(r.Offset.Int64Values()[lo:hi])},
	}
	for i, c := range cols {
		if err := c.append(b.Column(i)); err != nil {
			return fmt.Errorf("column %s: %w", c.name, err)
		}
	}
	return nil
}

// appendItems appends each row's item list. The driver's Array column takes
// a row at a time without reflection, and takes it element by element
// through an interface: pointers box for free where strings would allocate,
// hence []*string into a reused slice of the row's strings.
func appendItems(col driver.BatchColumn, sc *chScratch, r *schemas.RecommendationRows, lo, hi int) error {
	for i := lo; i < hi; i++ {
		start, end := r.Items.ValueOffsets(i)
		sc.items, sc.itemPtrs = sc.items[:0], sc.itemPtrs[:0]
		for j := start; j < end; j++ {
			sc.items = append(sc.items, r.ItemValues.Value(int(j)))
		}
		for j := range sc.items {
			sc.itemPtrs = append(sc.itemPtrs, &sc.items[j])
		}
		if err := col.AppendRow(sc.itemPtrs); err != nil {
			return err
		}
	}
	return nil
}

// appendScores appends each row's scores as pointers into the Arrow buffer
// (see appendItems for why pointers).
func appendScores(col driver.BatchColumn, sc *chScratch, r *schemas.RecommendationRows, lo, hi int) error {
	values := r.ScoreValues.Float32Values()
	for i := lo; i < hi; i++ {
		start, end := r.Scores.ValueOffsets(i)
		sc.scorePtrs = sc.scorePtrs[:0]
		for j := start; j < end; j++ {
			sc.scorePtrs = append(sc.scorePtrs, &values[j])
		}
		if err := col.AppendRow(sc.scorePtrs); err != nil {
			return err
		}
	}
	return nil
}

// appendEvents appends rows [lo, hi) to b in the column order of
// schemas.ClickHouseEventsColumns.
func (s *ClickHouseSink) appendEvents(b driver.Batch, sc *chScratch, r schemas.EventRows, lo, hi int) error {
	types := r.Type.Uint8Values()[lo:hi]
	for i, t := range types {
		if int(t) >= len(s.cfg.EventTypes) {
			return fmt.Errorf("row %d: event type code %d not in event_types (%d types): the sink's event_types must be the consumer's",
				lo+i, t, len(s.cfg.EventTypes))
		}
	}
	appends := []struct {
		name string
		fn   func() any
	}{
		{"event_id", func() any { return stringValues(sc, r.EventID, lo, hi) }},
		{"user_id", func() any { return stringValues(sc, r.UserID, lo, hi) }},
		{"item_id", func() any { return stringValues(sc, r.ItemID, lo, hi) }},
		{"type", func() any {
			sc.strs = sc.strs[:0]
			for _, t := range types {
				sc.strs = append(sc.strs, s.cfg.EventTypes[t])
			}
			return sc.strs
		}},
		{"ts", func() any { return timeValues(sc, r.Ts.TimestampValues(), lo, hi) }},
		{"ts_ms", func() any { return msValues(sc, r.Ts.TimestampValues(), lo, hi) }},
		{"session_id", func() any { return stringValues(sc, r.SessionID, lo, hi) }},
		{"query", func() any { return stringValues(sc, r.Query, lo, hi) }},
		{"price", func() any {
			values := r.Price.Float64Values()
			sc.prices = sc.prices[:0]
			for i := lo; i < hi; i++ {
				if r.Price.IsNull(i) {
					sc.prices = append(sc.prices, nil)
				} else {
					sc.prices = append(sc.prices, &values[i])
				}
			}
			return sc.prices
		}},
		{"category", func() any { return stringValues(sc, r.Category, lo, hi) }},
		{"src_partition", func() any { return r.Partition.Int32Values()[lo:hi] }},
		{"src_offset", func() any { return r.Offset.Int64Values()[lo:hi] }},
	}
	for i, a := range appends {
		if err := b.Column(i).Append(a.fn()); err != nil {
			return fmt.Errorf("column %s: %w", a.name, err)
		}
	}
	return nil
}

// stringValues returns rows [lo, hi) of a string column; a null is "". The
// strings point into the Arrow buffer (no copy) and the slice is reused.
func stringValues(sc *chScratch, a interface {
	Value(int) string
	IsNull(int) bool
}, lo, hi int) []string {
	sc.strs = sc.strs[:0]
	for i := lo; i < hi; i++ {
		if a.IsNull(i) {
			sc.strs = append(sc.strs, "")
		} else {
			sc.strs = append(sc.strs, a.Value(i))
		}
	}
	return sc.strs
}

// timeValues converts Unix-millisecond timestamps to time.Time, which both
// DateTime (truncated to seconds) and DateTime64(3) columns take.
func timeValues[T ~int64](sc *chScratch, ms []T, lo, hi int) []time.Time {
	sc.times = sc.times[:0]
	for _, v := range ms[lo:hi] {
		sc.times = append(sc.times, time.UnixMilli(int64(v)).UTC())
	}
	return sc.times
}

func msValues[T ~int64](sc *chScratch, ms []T, lo, hi int) []int64 {
	sc.i64 = sc.i64[:0]
	for _, v := range ms[lo:hi] {
		sc.i64 = append(sc.i64, int64(v))
	}
	return sc.i64
}

// isClickHouseTransient reports whether a ClickHouse error is worth
// retrying: the network's failures, and the server's exceptions that say it
// is overloaded, shutting down or short of resources rather than that the
// query is wrong.
func isClickHouseTransient(err error) bool {
	if isTransientNetwork(err) {
		return true
	}
	if errors.Is(err, clickhouse.ErrAcquireConnTimeout) ||
		errors.Is(err, clickhouse.ErrConnectionClosed) {
		return true
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 159, // TIMEOUT_EXCEEDED
			160, // TOO_SLOW
			202, // TOO_MANY_SIMULTANEOUS_QUERIES
			203, // NO_FREE_CONNECTION
			209, // SOCKET_TIMEOUT
			210, // NETWORK_ERROR
			241, // MEMORY_LIMIT_EXCEEDED
			242, // TABLE_IS_READ_ONLY
			252, // TOO_MANY_PARTS: merges are behind; back off
			285, // TOO_FEW_LIVE_REPLICAS
			319, // UNKNOWN_STATUS_OF_INSERT
			425, // SYSTEM_ERROR
			999: // KEEPER_EXCEPTION
			return true
		}
	}
	return false
}

// isMissingTable reports an UNKNOWN_TABLE or UNKNOWN_DATABASE exception.
func isMissingTable(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
