package consumers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/schemas"
)

func TestReaderConfigValidate(t *testing.T) {
	ok := ReaderConfig{Brokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name string
		edit func(*ReaderConfig)
		want string
	}{
		{"defaults", func(*ReaderConfig) {}, ""},
		{"no brokers", func(c *ReaderConfig) { c.Brokers = nil }, "brokers: at least one"},
		{"broker without port", func(c *ReaderConfig) { c.Brokers = []string{"localhost"} }, `brokers[0]: "localhost" is not host:port`},
		{"start offset", func(c *ReaderConfig) { c.StartOffset = "middle" }, `start_offset: must be "earliest" or "latest", got "middle"`},
		{"fetch max bytes", func(c *ReaderConfig) { c.FetchMaxBytes = -1 }, "fetch_max_bytes: must be > 0"},
		{"buffered batches", func(c *ReaderConfig) { c.MaxBufferedBatches = -1 }, "max_buffered_batches: must be > 0"},
		{"session timeout", func(c *ReaderConfig) { c.SessionTimeout = -time.Second }, "session_timeout"},
		{"heartbeat over session", func(c *ReaderConfig) { c.HeartbeatInterval = time.Minute }, "heartbeat_interval: must be below session_timeout"},
		{"dlq is input", func(c *ReaderConfig) { c.Topic, c.DeadLetterTopic = "a", "a" }, "dead_letter_topic: must differ"},
		{"batch", func(c *ReaderConfig) { c.Batch.MaxRows = -1 }, "batch.max_rows: must be > 0 (0 means 5000), got -1"},
		{"limits", func(c *ReaderConfig) { c.Limits.MaxIDBytes = -3 }, "limits.max_id_bytes: must be >= 0"},
		{"limits types", func(c *ReaderConfig) { c.Limits.Types = []string{"a", "a"} }, `limits.types[1]: "a" duplicates types[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			err := cfg.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if tt.want == "" {
				return
			}
			// NewConsumer refuses the same config with the same message,
			// before it dials anything.
			if _, err := NewConsumer(cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewConsumer = %v, want %q", err, tt.want)
			}
		})
	}
	d := ok.WithDefaults()
	if d.Topic != "clickstream.events" || d.GroupID != "recstream" || d.DeadLetterTopic != "clickstream.dlq" ||
		d.StartOffset != "earliest" || d.FetchMaxBytes != 10<<20 || d.MaxBufferedBatches != 2 || d.Batch.MaxRows != 5000 ||
		d.Limits.MaxIDBytes != 128 {
		t.Errorf("defaults = %+v", d)
	}
}

// TestReaderConfigYAML: the config reads from the YAML keys its docs name,
// durations included.
func TestReaderConfigYAML(t *testing.T) {
	const doc = `
brokers: ["127.0.0.1:9092"]
topic: events
group_id: g
dead_letter_topic: events.dlq
start_offset: latest
fetch_max_bytes: 1048576
max_buffered_batches: 4
session_timeout: 10s
heartbeat_interval: 500ms
batch: {max_rows: 100, max_bytes: 65536, linger: 20ms}
limits:
  max_message_bytes: 4096
  max_id_bytes: 64
  max_field_bytes: 100
  max_query_bytes: 200
  types: [view, click]
  max_future_skew: 1h
`
	var cfg ReaderConfig
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	want := ReaderConfig{
		Brokers: []string{"127.0.0.1:9092"}, Topic: "events", GroupID: "g", DeadLetterTopic: "events.dlq",
		StartOffset: "latest", FetchMaxBytes: 1 << 20, MaxBufferedBatches: 4, SessionTimeout: 10 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond, Batch: BatchConfig{MaxRows: 100, MaxBytes: 65536, Linger: 20 * time.Millisecond},
		Limits: schemas.EventLimits{MaxMessageBytes: 4096, MaxIDBytes: 64, MaxFieldBytes: 100, MaxQueryBytes: 200,
			Types: []string{"view", "click"}, MaxFutureSkew: time.Hour},
	}
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
