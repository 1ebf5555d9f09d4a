package sinks

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/recstream/recstream/schemas"
)

// ClickHouseConfig configures the ClickHouse sink. The zero value, after
// WithDefaults, connects to a local server's native port as "default" and
// writes both tables into the database "recstream".
type ClickHouseConfig struct {
	// Addr lists host:port addresses of the server's NATIVE protocol port
	// (not HTTP: old servers answer clickhouse-go's HTTP with an error). The
	// driver fails over between them. Default ["127.0.0.1:9000"].
	Addr []string `yaml:"addr"`
	// Database holds recstream's tables; created if missing. A plain
	// identifier. Default "recstream".
	Database string `yaml:"database"`
	// Username and Password authenticate; the user needs to create the
	// database and tables at start-up and to insert. Default user "default",
	// empty password. Password is a secret: give it through the environment
	// (RECSTREAM_CLICKHOUSE_PASSWORD) or PasswordFile, not in a file under
	// version control; it is masked by `recstream config check` and never
	// logged.
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile names a file holding Password (a trailing newline is
	// dropped), read when the configuration is loaded: the shape of Docker
	// and Kubernetes secrets. Set at most one of the two.
	PasswordFile string `yaml:"password_file" secretfile:"Password"`
	// TLS encrypts the connection (the server's secure native port, 9440 by
	// default). The wiring builds it from clickhouse.tls, never YAML here.
	// Nil means plaintext.
	TLS *tls.Config `yaml:"-"`
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds waiting for the server's answer, an insert's
	// included; past it the write fails as unavailable and is retried.
	// Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// ModernTypes chooses the DDL variant for tables the sink creates: "on"
	// (DateTime64, LowCardinality, TTL; servers 20.1 and newer), "off" (the
	// legacy variant every server accepts), or "auto" (by the server's
	// version). Tables that exist are used as they are. Default "auto".
	ModernTypes string `yaml:"modern_types"`
	// EventsTTLDays is the retention of the events table in days, applied
	// when the modern variant creates it (old servers have no TTL). Zero
	// keeps events forever.
	EventsTTLDays int `yaml:"events_ttl_days"`
	// WriteEvents says whether raw events are written to the events table
	// as well as recommendations. Nil means true.
	WriteEvents *bool `yaml:"write_events"`
	// EventTypes names the event type codes of the input batches (the type
	// column holds an index into this list); it must be the consumer's list
	// (input.limits.types). Default schemas.DefaultEventTypes().
	EventTypes []string `yaml:"event_types"`
	// InsertChunkRows is the most rows sent in one block of an insert: a
	// larger batch is sent in several blocks. Client memory grows with it
	// (about 150 MB per 100k recommendation rows); 100k is where throughput
	// stops improving on 18.16. Default 100000.
	InsertChunkRows int `yaml:"insert_chunk_rows"`
}

// Defaults of ClickHouseConfig.
const (
	DefaultClickHouseAddr            = "127.0.0.1:9000"
	DefaultClickHouseDatabase        = "recstream"
	DefaultClickHouseUsername        = "default"
	DefaultClickHouseDialTimeout     = 5 * time.Second
	DefaultClickHouseReadTimeout     = 30 * time.Second
	DefaultClickHouseInsertChunkRows = 100_000
)

// WithDefaults returns c with every zero field set to its default.
func (c ClickHouseConfig) WithDefaults() ClickHouseConfig {
	if len(c.Addr) == 0 {
		c.Addr = []string{DefaultClickHouseAddr}
	}
	if c.Database == "" {
		c.Database = DefaultClickHouseDatabase
	}
	if c.Username == "" {
		c.Username = DefaultClickHouseUsername
	}
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultClickHouseDialTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, DefaultClickHouseReadTimeout)
	if c.ModernTypes == "" {
		c.ModernTypes = "auto"
	}
	if c.WriteEvents == nil {
		t := true
		c.WriteEvents = &t
	}
	if len(c.EventTypes) == 0 {
		c.EventTypes = schemas.DefaultEventTypes()
	}
	c.InsertChunkRows = cmp.Or(c.InsertChunkRows, DefaultClickHouseInsertChunkRows)
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c ClickHouseConfig) Validate() error {
	if len(c.Addr) == 0 {
		return errors.New("addr: at least one host:port is required")
	}
	for _, a := range c.Addr {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("addr: %q is not host:port: %w", a, err)
		}
	}
	if _, err := schemas.ClickHouseDDL(schemas.ClickHouseDDLOptions{Database: c.Database}); err != nil {
		return err // names "database"
	}
	if c.DialTimeout <= 0 {
		return fmt.Errorf("dial_timeout: must be > 0, got %v", c.DialTimeout)
	}
	if c.ReadTimeout <= 0 {
		return fmt.Errorf("read_timeout: must be > 0, got %v", c.ReadTimeout)
	}
	switch c.ModernTypes {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("modern_types: must be auto, on or off, got %q", c.ModernTypes)
	}
	if c.EventsTTLDays < 0 {
		return fmt.Errorf("events_ttl_days: must be >= 0, got %d", c.EventsTTLDays)
	}
	if len(c.EventTypes) == 0 || len(c.EventTypes) > 256 {
		return fmt.Errorf("event_types: must list 1 to 256 types, got %d", len(c.EventTypes))
	}
	if c.InsertChunkRows <= 0 || c.InsertChunkRows > 1_000_000 {
		return fmt.Errorf("insert_chunk_rows: must be in 1..1000000, got %d", c.InsertChunkRows)
	}
	return nil
}
