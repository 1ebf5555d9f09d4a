package schemas_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/schemas"
)

func TestClickHouseDDLRender(t *testing.T) {
	tests := []struct {
		name       string
		opts       schemas.ClickHouseDDLOptions
		wantErr    string
		contain    []string
		notContain []string
	}{
		{
			name:       "legacy",
			opts:       schemas.ClickHouseDDLOptions{Database: "recstream", EventsTTLDays: 30},
			contain:    []string{"CREATE DATABASE IF NOT EXISTS recstream", "recstream.recommendations", "ReplacingMergeTree(version)", "DateTime('UTC')", "recstream.events", "PARTITION BY toYYYYMM(ts)"},
			notContain: []string{"DateTime64", "LowCardinality", "\nTTL", "{{"},
		},
		{
			name:       "modern with TTL",
			opts:       schemas.ClickHouseDDLOptions{Database: "analytics_1", Modern: true, EventsTTLDays: 30},
			contain:    []string{"analytics_1.recommendations", "DateTime64(3, 'UTC')", "LowCardinality(String)", "TTL toDateTime(ts) + INTERVAL 30 DAY"},
			notContain: []string{"{{"},
		},
		{
			name:       "modern without TTL",
			opts:       schemas.ClickHouseDDLOptions{Database: "recstream", Modern: true},
			contain:    []string{"DateTime64(3, 'UTC')"},
			notContain: []string{"\nTTL", "INTERVAL"},
		},
		{name: "empty database", opts: schemas.ClickHouseDDLOptions{}, wantErr: "database: must be an identifier"},
		{name: "injection", opts: schemas.ClickHouseDDLOptions{Database: "x; DROP TABLE y"}, wantErr: "database: must be an identifier"},
		{name: "negative TTL", opts: schemas.ClickHouseDDLOptions{Database: "r", Modern: true, EventsTTLDays: -1}, wantErr: "events_ttl_days: must be >= 0, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmts, err := schemas.ClickHouseDDL(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != 3 || !strings.Contains(stmts[0], "CREATE DATABASE") {
				t.Fatalf("want 3 statements, database first; got %q", stmts)
			}
			all := strings.Join(stmts, "\n")
			for _, s := range tt.contain {
				if !strings.Contains(all, s) {
					t.Errorf("DDL lacks %q:\n%s", s, all)
				}
			}
			for _, s := range tt.notContain {
				if strings.Contains(all, s) {
					t.Errorf("DDL has %q:\n%s", s, all)
				}
			}
		})
	}
}

func TestClickHouseSupportsModern(t *testing.T) {
	tests := []struct {
		version string
		want    bool
		wantErr bool
	}{
		{"18.16.1", false, false},
		{"19.17.4.11", false, false},
		{"20.1.2.4", true, false},
		{"24.8.4.13", true, false},
		{" 26.7.3.1\n", true, false},
		{"", false, true},
		{"v24", false, true},
	}
	for _, tt := range tests {
		got, err := schemas.ClickHouseSupportsModern(tt.version)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ClickHouseSupportsModern(%q) = %v, %v; want %v, error %v", tt.version, got, err, tt.want, tt.wantErr)
		}
	}
}

func startServer(t *testing.T) driver.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.StartClickHouse(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("start clickhouse: %v (run make setup)", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr()}, Protocol: clickhouse.Native})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		if err := srv.Stop(); err != nil {
			t.Errorf("stop clickhouse: %v", err)
		}
	})
	return conn
}

func columns(t *testing.T, conn driver.Conn, db, table string) (names []string, types map[string]string) {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types = map[string]string{}
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
		types[n] = typ
	}
	return names, types
}

// The legacy DDL applies on the server tests run (18.16), twice without
// error, and creates exactly the columns the inserts name.
func TestClickHouseDDLAppliesIdempotently(t *testing.T) {
	conn := startServer(t)
	ctx := context.Background()
	stmts, err := schemas.ClickHouseDDL(schemas.ClickHouseDDLOptions{Database: "ddltest"})
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		for _, s := range stmts {
			if err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("round %d: %v\n%s", round, err, s)
			}
		}
	}
	for _, tc := range []struct {
		table, cols string
		types       map[string]string
	}{
		{schemas.ClickHouseRecommendationsTable, schemas.ClickHouseRecommendationsColumns, map[string]string{
			"items": "Array(String)", "scores": "Array(Float32)", "version": "UInt64", "event_ts": "DateTime('UTC')",
		}},
		{schemas.ClickHouseEventsTable, schemas.ClickHouseEventsColumns, map[string]string{
			"price": "Nullable(Float64)", "ts": "DateTime('UTC')", "ts_ms": "Int64", "src_partition": "Int32",
		}},
	} {
		names, types := columns(t, conn, "ddltest", tc.table)
		if got := strings.Join(names, ", "); got != tc.cols {
			t.Errorf("%s columns:\n got %s\nwant %s", tc.table, got, tc.cols)
		}
		for col, want := range tc.types {
			if types[col] != want {
				t.Errorf("%s.%s type = %s, want %s", tc.table, col, types[col], want)
			}
		}
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = 'ddltest' AND name = 'recommendations'").Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(engine, "ReplacingMergeTree(version)") || !strings.Contains(engine, "ORDER BY user_id") {
		t.Errorf("recommendations engine = %q", engine)
	}
}

// The modern variant is not for old servers: 18.16 rejects it, which is why
// the sink detects the version.
func TestClickHouseModernDDLRejectedByOldServer(t *testing.T) {
	conn := startServer(t)
	stmts, err := schemas.ClickHouseDDL(schemas.ClickHouseDDLOptions{Database: "moderntest", Modern: true, EventsTTLDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if modern, _ := schemas.ClickHouseSupportsModern(version); modern {
		t.Fatalf("test server %s is modern; this test expects the old server make setup installs", version)
	}
	if err := conn.Exec(ctx, stmts[0]); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, stmts[1]); err == nil {
		t.Fatalf("server %s accepted the modern recommendations DDL", version)
	}
}
