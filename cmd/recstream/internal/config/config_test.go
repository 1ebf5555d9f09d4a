package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "recstream.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRejectsBadFieldsByName(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     []string
		wantErr string // a substring naming the field
	}{
		{"no brokers", "input:\n  topic: t\n", nil, "kafka.brokers"},
		{"unknown field", "kafka:\n  brokers: [a:1]\n  brokerz: [b]\n", nil, "brokerz"},
		{"wrong type", "kafka:\n  brokers: [a:1]\ninput:\n  batch:\n    max_rows: lots\n", nil, "input.batch.max_rows"},
		{"negative batch rows", "kafka:\n  brokers: [a:1]\ninput:\n  batch:\n    max_rows: -5\n", nil, "max_rows"},
		{"bad log level", "kafka:\n  brokers: [a:1]\nscorer:\n  model_dir: m\nlog:\n  level: loud\n", nil, "log.level"},
		{"bad env value", "kafka:\n  brokers: [a:1]\n", []string{"RECSTREAM_INPUT_BATCH_MAX_ROWS=many"}, "RECSTREAM_INPUT_BATCH_MAX_ROWS"},
		{"unknown env", "kafka:\n  brokers: [a:1]\n", []string{"RECSTREAM_INPUT_BATCH_MAX_ROWZ=1"}, "RECSTREAM_INPUT_BATCH_MAX_ROWZ"},
		{"bad top-k", "kafka:\n  brokers: [a:1]\nscorer:\n  model_dir: m\n  top_k: -1\n", nil, "top_k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.yaml), tt.env)
			if err == nil {
				t.Fatalf("Load accepted a bad configuration")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not name %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadAppliesDefaultsAndEnvOverrides(t *testing.T) {
	path := writeFile(t, "kafka:\n  brokers: [yaml-broker:9092]\nscorer:\n  model_dir: models/v1\n")
	cfg, err := Load(path, []string{
		"RECSTREAM_KAFKA_BROKERS=env-a:9092,env-b:9092",
		"RECSTREAM_INPUT_BATCH_MAX_ROWS=1234",
		"RECSTREAM_INPUT_BATCH_LINGER=75ms",
		"UNRELATED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "env-a:9092,env-b:9092" {
		t.Errorf("kafka.brokers = %s, want the environment's", got)
	}
	if got := strings.Join(cfg.Input.Brokers, ","); got != "env-a:9092,env-b:9092" {
		t.Errorf("input.brokers = %s, want kafka.brokers shared", got)
	}
	if cfg.Input.Batch.MaxRows != 1234 {
		t.Errorf("input.batch.max_rows = %d, want 1234", cfg.Input.Batch.MaxRows)
	}
	if cfg.Input.Batch.Linger != 75*time.Millisecond {
		t.Errorf("input.batch.linger = %s, want 75ms", cfg.Input.Batch.Linger)
	}
	if cfg.Input.Topic == "" || cfg.Output.Topic == "" || cfg.Scorer.MaxUsers == 0 {
		t.Errorf("defaults not filled: input.topic=%q output.topic=%q scorer.max_users=%d", cfg.Input.Topic, cfg.Output.Topic, cfg.Scorer.MaxUsers)
	}
}

func TestEveryExampleConfigIsValid(t *testing.T) {
	files, err := filepath.Glob("../../../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEnvNamesCoverNestedFields(t *testing.T) {
	names := map[string]string{}
	for _, kv := range EnvNames() {
		names[kv[0]] = kv[1]
	}
	for env, path := range map[string]string{
		"RECSTREAM_KAFKA_BROKERS":        "kafka.brokers",
		"RECSTREAM_INPUT_BATCH_MAX_ROWS": "input.batch.max_rows",
		"RECSTREAM_CLICKHOUSE_PASSWORD":  "clickhouse.password",
	} {
		if names[env] != path {
			t.Errorf("%s -> %q, want %q", env, names[env], path)
		}
	}
}
