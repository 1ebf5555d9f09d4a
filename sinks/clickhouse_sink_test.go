package sinks

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/schemas"
)

func newCHSink(t testing.TB, cfg ClickHouseConfig) *ClickHouseSink {
	t.Helper()
	if len(cfg.Addr) == 0 {
		cfg.Addr = []string{sharedCH.Addr()}
	}
	if cfg.Database == "" {
		cfg.Database = testDatabase(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewClickHouseSink(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("NewClickHouseSink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestClickHouseConfigValidate(t *testing.T) {
	f := false
	tests := []struct {
		name    string
		modify  func(*ClickHouseConfig)
		wantErr string
	}{
		{"defaults", func(*ClickHouseConfig) {}, ""},
		{"bad addr", func(c *ClickHouseConfig) { c.Addr = []string{"localhost"} }, "addr:"},
		{"bad database", func(c *ClickHouseConfig) { c.Database = "recs-prod" }, "database:"},
		{"bad modern_types", func(c *ClickHouseConfig) { c.ModernTypes = "yes" }, `modern_types: must be auto, on or off, got "yes"`},
		{"negative ttl", func(c *ClickHouseConfig) { c.EventsTTLDays = -1 }, "events_ttl_days: must be >= 0, got -1"},
		{"negative read timeout", func(c *ClickHouseConfig) { c.ReadTimeout = -time.Second }, "read_timeout:"},
		{"chunk too big", func(c *ClickHouseConfig) { c.InsertChunkRows = 2_000_000 }, "insert_chunk_rows:"},
		{"events off", func(c *ClickHouseConfig) { c.WriteEvents = &f }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ClickHouseConfig{}.WithDefaults()
			tt.modify(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	d := ClickHouseConfig{}.WithDefaults()
	if d.Addr[0] != "127.0.0.1:9000" || d.Database != "recstream" || d.Username != "default" ||
		d.ModernTypes != "auto" || !*d.WriteEvents || d.InsertChunkRows != 100_000 || len(d.EventTypes) != 5 {
		t.Errorf("defaults: %+v", d)
	}
	if c := (ClickHouseConfig{WriteEvents: &f}).WithDefaults(); *c.WriteEvents {
		t.Error("WithDefaults overrode write_events: false")
	}
}

// Start-up applies the DDL; a second sink on the same database applies it
// again without error and without touching the data.
func TestClickHouseSinkDDLIdempotent(t *testing.T) {
	db := freshDatabase(t)
	s1 := newCHSink(t, ClickHouseConfig{Database: db})
	if s1.ModernTypes() {
		t.Errorf("ModernTypes() = true on server %s; want the legacy variant", s1.ServerVersion())
	}
	batch, _ := makeRecs(t, recSpec{n: 10, k: 3})
	defer batch.Release()
	if err := s1.Write(context.Background(), nil, batch); err != nil {
		t.Fatal(err)
	}
	newCHSink(t, ClickHouseConfig{Database: db})
	conn := chConn(t, sharedCH.Addr())
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations"); n != 10 {
		t.Errorf("rows after a second start-up = %d, want 10", n)
	}
}

// Rows land with every column intact; writing the same batch again doubles
// the raw rows but FINAL collapses them to one row per user; a newer version
// of some users replaces theirs.
func TestClickHouseSinkWriteAndFinal(t *testing.T) {
	db := freshDatabase(t)
	s := newCHSink(t, ClickHouseConfig{Database: db})
	conn := chConn(t, sharedCH.Addr())
	ctx := context.Background()

	events := makeEvents(t, 300, 40)
	defer events.Release()
	recs, want := makeRecs(t, recSpec{n: 100, k: 20, versionBase: 1000, seed: 1})
	defer recs.Release()
	for range 2 {
		if err := s.Write(ctx, events, recs); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations"); n != 200 {
		t.Errorf("raw rows after writing twice = %d, want 200", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations FINAL"); n != 100 {
		t.Errorf("FINAL rows = %d, want 100 (one per user)", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events FINAL"); n != 300 {
		t.Errorf("events FINAL = %d, want 300", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events"); n != 600 {
		t.Errorf("raw events = %d, want 600", n)
	}

	// Newer versions for users 50..149: 50 replace, 50 are new.
	newer, wantNewer := makeRecs(t, recSpec{n: 100, userBase: 50, k: 20, versionBase: 5000, seed: 2, model: "test-model-v2"})
	defer newer.Release()
	if err := s.Write(ctx, nil, newer); err != nil {
		t.Fatal(err)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations FINAL"); n != 150 {
		t.Errorf("FINAL rows = %d, want 150", n)
	}
	if n := queryUint64(t, conn, "SELECT uniqExact(user_id) FROM "+db+".recommendations FINAL"); n != 150 {
		t.Errorf("users in FINAL = %d, want 150", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations FINAL WHERE user_id >= 'user-000050' AND model_version != 'test-model-v2'"); n != 0 {
		t.Errorf("%d users 50.. kept an older version", n)
	}

	// Every column of two users, read back exactly.
	check := []schemas.Recommendation{want[7], wantNewer[10]}
	for _, w := range check {
		var (
			got        schemas.Recommendation
			eventTs    time.Time
			producedAt time.Time
			version    uint64
		)
		row := conn.QueryRow(ctx, "SELECT user_id, items, scores, model_version, version, event_ts, event_ts_ms, produced_at, src_partition, src_offset FROM "+
			db+".recommendations FINAL WHERE user_id = ?", w.UserID)
		if err := row.Scan(&got.UserID, &got.Items, &got.Scores, &got.ModelVersion, &version, &eventTs,
			&got.EventTsMs, &producedAt, &got.Partition, &got.Offset); err != nil {
			t.Fatalf("read %s: %v", w.UserID, err)
		}
		got.Version = version
		got.ProducedAtMs = w.ProducedAtMs // checked below at the column's precision
		if strings.Join(got.Items, ",") != strings.Join(w.Items, ",") || len(got.Scores) != len(w.Scores) {
			t.Errorf("%s items: got %v, want %v", w.UserID, got.Items, w.Items)
		}
		for j := range w.Scores {
			if math.Float32bits(got.Scores[j]) != math.Float32bits(w.Scores[j]) {
				t.Errorf("%s score %d: got %v, want %v", w.UserID, j, got.Scores[j], w.Scores[j])
			}
		}
		if got.ModelVersion != w.ModelVersion || got.Version != w.Version || got.EventTsMs != w.EventTsMs ||
			got.Partition != w.Partition || got.Offset != w.Offset {
			t.Errorf("%s: got %+v, want %+v", w.UserID, got, w)
		}
		if eventTs.Unix() != w.EventTsMs/1000 || producedAt.Unix() != w.ProducedAtMs/1000 {
			t.Errorf("%s times: event_ts %v produced_at %v, want seconds of %d and %d", w.UserID, eventTs, producedAt, w.EventTsMs, w.ProducedAtMs)
		}
	}

	// Events: types by name, NULL prices, empty optional strings.
	var typ, session, query, item string
	var price *float64
	var tsMs int64
	if err := conn.QueryRow(ctx, "SELECT type, session_id, query, item_id, price, ts_ms FROM "+db+".events FINAL WHERE event_id = 'ev-0000000'").
		Scan(&typ, &session, &query, &item, &price, &tsMs); err != nil {
		t.Fatal(err)
	}
	if typ != "search" || session != "" || query != "red shoes" || item != "" || price != nil || tsMs != 1795838901123 {
		t.Errorf("event 0 = type %q session %q query %q item %q price %v ts_ms %d", typ, session, query, item, price, tsMs)
	}
	if err := conn.QueryRow(ctx, "SELECT type, session_id, price FROM "+db+".events FINAL WHERE event_id = 'ev-0000001'").
		Scan(&typ, &session, &price); err != nil {
		t.Fatal(err)
	}
	if typ != "click" || session != "s-1" || price == nil || *price != 1.99 {
		t.Errorf("event 1 = type %q session %q price %v", typ, session, price)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events FINAL WHERE type = 'search'"); n != 60 {
		t.Errorf("search events = %d, want 60", n)
	}
}

// Batches larger than insert_chunk_rows are sent in several blocks of one
// insert, and every row arrives.
func TestClickHouseSinkChunks(t *testing.T) {
	db := freshDatabase(t)
	s := newCHSink(t, ClickHouseConfig{Database: db, InsertChunkRows: 7})
	recs, _ := makeRecs(t, recSpec{n: 100, k: 4})
	defer recs.Release()
	events := makeEvents(t, 50, 10)
	defer events.Release()
	if err := s.Write(context.Background(), events, recs); err != nil {
		t.Fatal(err)
	}
	conn := chConn(t, sharedCH.Addr())
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations"); n != 100 {
		t.Errorf("rows = %d, want 100", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events"); n != 50 {
		t.Errorf("events = %d, want 50", n)
	}
	if n := queryUint64(t, conn, "SELECT sum(length(items)) FROM "+db+".recommendations"); n != 400 {
		t.Errorf("items = %d, want 400", n)
	}
}

func TestClickHouseSinkWriteEventsOff(t *testing.T) {
	db := freshDatabase(t)
	off := false
	s := newCHSink(t, ClickHouseConfig{Database: db, WriteEvents: &off})
	recs, _ := makeRecs(t, recSpec{n: 5, k: 2})
	defer recs.Release()
	events := makeEvents(t, 20, 5)
	defer events.Release()
	if err := s.Write(context.Background(), events, recs); err != nil {
		t.Fatal(err)
	}
	conn := chConn(t, sharedCH.Addr())
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events"); n != 0 {
		t.Errorf("events written with write_events off: %d", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations"); n != 5 {
		t.Errorf("recommendations = %d, want 5", n)
	}
}

// A server outage makes Write fail with ErrUnavailable; once the server is
// back the same sink writes again (the pipeline's retry loop).
func TestClickHouseSinkOutageIsUnavailable(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.StartClickHouse(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("start clickhouse: %v (run make setup)", err)
	}
	defer srv.Stop()
	s := newCHSink(t, ClickHouseConfig{Addr: []string{srv.Addr()}, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	recs, _ := makeRecs(t, recSpec{n: 20, k: 5})
	defer recs.Release()
	if err := s.Write(ctx, nil, recs); err != nil {
		t.Fatal(err)
	}

	// A hung server (stopped, not dead): the read timeout turns the wait
	// into ErrUnavailable.
	if err := syscall.Kill(srv.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Write(ctx, nil, recs)
	if err := syscall.Kill(srv.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write to a hung server: %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Write to a hung server took %v; read_timeout is 5s", d)
	}
	if err := s.Write(ctx, nil, recs); err != nil {
		t.Fatalf("Write after the server resumed: %v", err)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = s.Write(wctx, nil, recs)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write with the server down: %v; want ErrUnavailable", err)
	}
	t.Logf("outage error: %v", err)

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, nil, recs); err != nil {
		t.Fatalf("Write after restart: %v", err)
	}
	if n := queryUint64(t, chConn(t, srv.Addr()), "SELECT count() FROM "+testDatabase(t)+".recommendations FINAL"); n != 20 {
		t.Errorf("FINAL rows = %d, want 20", n)
	}
}

// A sink that cannot write must not start: unreachable server
// (ErrUnavailable), a user without write access, a table of another shape.
func TestClickHouseSinkStartupFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = NewClickHouseSink(ctx, ClickHouseConfig{Addr: []string{addr}, DialTimeout: time.Second}, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error = %v, want ErrUnavailable", err)
		}
	})
	t.Run("readonly user", func(t *testing.T) {
		db := freshDatabase(t)
		newCHSink(t, ClickHouseConfig{Database: db}) // tables exist
		_, err := NewClickHouseSink(ctx, ClickHouseConfig{Addr: []string{sharedCH.Addr()}, Database: db, Username: "readonly"}, nil)
		if err == nil {
			t.Fatal("a readonly user started a sink")
		}
		if errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "readonly") {
			t.Fatalf("error = %v; want a fatal error that says readonly", err)
		}
	})
	t.Run("table of another shape", func(t *testing.T) {
		db := freshDatabase(t)
		conn := chConn(t, sharedCH.Addr())
		for _, q := range []string{
			"CREATE DATABASE " + db,
			"CREATE TABLE " + db + ".recommendations (user_id String, items Array(String), version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY user_id",
		} {
			if err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err := NewClickHouseSink(ctx, ClickHouseConfig{Addr: []string{sharedCH.Addr()}, Database: db}, nil)
		if err == nil || !strings.Contains(err.Error(), "without columns scores, model_version") {
			t.Fatalf("error = %v; want one naming the missing columns", err)
		}
	})
}

// A table dropped while running (a sink lost) is created again by the next
// write.
func TestClickHouseSinkRecreatesDroppedTable(t *testing.T) {
	db := freshDatabase(t)
	s := newCHSink(t, ClickHouseConfig{Database: db})
	conn := chConn(t, sharedCH.Addr())
	if err := conn.Exec(context.Background(), "DROP DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	recs, _ := makeRecs(t, recSpec{n: 3, k: 2})
	defer recs.Release()
	events := makeEvents(t, 4, 2)
	defer events.Release()
	if err := s.Write(context.Background(), events, recs); err != nil {
		t.Fatalf("Write after DROP DATABASE: %v", err)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations"); n != 3 {
		t.Errorf("rows = %d, want 3", n)
	}
}

func TestClickHouseSinkFatalAndCanceled(t *testing.T) {
	s := newCHSink(t, ClickHouseConfig{EventTypes: []string{"view", "click"}})
	events := makeEvents(t, 10, 2) // uses type codes up to 4
	defer events.Release()
	err := s.Write(context.Background(), events, nil)
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "event_types") {
		t.Errorf("unknown type code: error = %v; want a fatal error naming event_types", err)
	}

	recs, _ := makeRecs(t, recSpec{n: 3, k: 2})
	defer recs.Release()
	checkContextErrors(t, func(ctx context.Context) error { return s.Write(ctx, nil, recs) })
}

// Writes from several goroutines (one per input partition) share one sink.
func TestClickHouseSinkConcurrentWrites(t *testing.T) {
	db := freshDatabase(t)
	s := newCHSink(t, ClickHouseConfig{Database: db, InsertChunkRows: 50})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			recs, _ := makeRecs(t, recSpec{n: 200, userBase: g * 200, k: 5, seed: uint64(g)})
			defer recs.Release()
			events := makeEvents(t, 100, 10)
			defer events.Release()
			errs <- s.Write(context.Background(), events, recs)
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	conn := chConn(t, sharedCH.Addr())
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".recommendations FINAL"); n != 800 {
		t.Errorf("FINAL rows = %d, want 800", n)
	}
	if n := queryUint64(t, conn, "SELECT count() FROM "+db+".events FINAL"); n != 100 {
		t.Errorf("events FINAL = %d, want 100 (the same 100 written four times)", n)
	}
}
