package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// The ClickHouse DDL lives in clickhouse/*.sql, one statement per file, with
// the documentation of every table and column beside it. Two variants share
// one set of column names: legacy/ for servers older than 20.1 (the 18.16
// that Debian ships: no DateTime64, TTL or CODEC; LowCardinality only behind
// a setting) and modern/ for newer ones.
//
//go:embed clickhouse/*.sql clickhouse/legacy/*.sql clickhouse/modern/*.sql
var clickHouseSQL embed.FS

// Names of recstream's ClickHouse tables, inside ClickHouseDDLOptions.Database.
const (
	ClickHouseRecommendationsTable = "recommendations"
	ClickHouseEventsTable          = "events"
)

// Column lists of the tables, in DDL order, for INSERT statements (which
// must name their columns: clickhouse-go's batches on 18.16 fail without
// them) and for checking an existing table. They are the same in both
// variants.
const (
	ClickHouseRecommendationsColumns = "user_id, items, scores, model_version, version, event_ts, event_ts_ms, produced_at, src_partition, src_offset"
	ClickHouseEventsColumns          = "event_id, user_id, item_id, type, ts, ts_ms, session_id, query, price, category, src_partition, src_offset"
)

// ClickHouseModernMajor is the first server major version whose DDL variant
// is modern: 20.1 has DateTime64, LowCardinality without a setting, and TTL.
const ClickHouseModernMajor = 20

// ClickHouseDDLOptions chooses the DDL variant and its parameters.
type ClickHouseDDLOptions struct {
	// Database holds the tables; it must be a plain identifier
	// ([A-Za-z_][A-Za-z0-9_]*) since it is written into the DDL unquoted.
	// Required.
	Database string
	// Modern selects the variant for servers >= 20.1 (DateTime64,
	// LowCardinality, TTL). False selects the legacy variant, which every
	// supported server accepts.
	Modern bool
	// EventsTTLDays is the retention of the events table in days, in the
	// modern variant only (18.16 has no TTL). Zero means keep forever.
	EventsTTLDays int
}

var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ClickHouseDDL returns the statements that create recstream's database and
// tables, in the order to run them. Every statement is idempotent (IF NOT
// EXISTS), so they are applied at every start-up; none alters an existing
// table. The statements carry no comments: the documentation stays in the
// .sql files.
func ClickHouseDDL(opts ClickHouseDDLOptions) ([]string, error) {
	if !identifierRE.MatchString(opts.Database) {
		return nil, fmt.Errorf("database: must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got %q", opts.Database)
	}
	if opts.EventsTTLDays < 0 {
		return nil, fmt.Errorf("events_ttl_days: must be >= 0, got %d", opts.EventsTTLDays)
	}
	variant := "legacy"
	if opts.Modern {
		variant = "modern"
	}
	files := []string{
		"clickhouse/database.sql",
		"clickhouse/" + variant + "/" + ClickHouseRecommendationsTable + ".sql",
		"clickhouse/" + variant + "/" + ClickHouseEventsTable + ".sql",
	}
	stmts := make([]string, 0, len(files))
	for _, name := range files {
		src, err := clickHouseSQL.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		tmpl, err := template.New(name).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, opts); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		stmts = append(stmts, stripSQLComments(buf.String()))
	}
	return stmts, nil
}

// stripSQLComments drops the documentation: whole lines that start with
// "--". The server would ignore them, but they would crowd logs and errors.
func stripSQLComments(sql string) string {
	lines := strings.Split(sql, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			kept = append(kept, l)
		}
	}
	return strings.TrimSpace(strings.Join(kept, "\n"))
}

// ClickHouseSupportsModern reports whether a server whose version() is
// version (for example "18.16.1" or "24.8.4.13") takes the modern DDL variant.
func ClickHouseSupportsModern(version string) (bool, error) {
	major, _, ok := strings.Cut(strings.TrimSpace(version), ".")
	n, err := strconv.Atoi(major)
	if !ok || err != nil {
		return false, fmt.Errorf("parse clickhouse version %q: want major.minor...", version)
	}
	return n >= ClickHouseModernMajor, nil
}
