package benchmark

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"zero is the defaults", Config{}, ""},
		{"negative events", Config{Events: -1}, "events: must be > 0"},
		{"too few events", Config{Events: 10}, "events: must be at least 100"},
		{"fewer items than top-K", Config{Items: 5}, "items: must be at least 20"},
		{"negative repeats", Config{Repeats: -2}, "repeats: must be > 0"},
		{"negative live duration", Config{LiveDuration: -time.Second}, "live_duration: must be > 0"},
		{"bad session batch", Config{SessionBatches: []int{256, 0}}, "session_batches[1]: must be > 0"},
		{"root data dir", Config{DataDir: "/"}, "data_dir: must not be the root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Events != DefaultEvents || c.Items != 10_000 || c.Dim != 64 || c.Repeats != 3 ||
		len(c.SessionBatches) != 2 || c.SessionBatches[0] != 256 || c.SessionBatches[1] != 1024 || c.DataDir != ".run/bench/data" {
		t.Fatalf("defaults = %+v", c)
	}
	// Defaults do not alias the package's slice.
	c.SessionBatches[0] = 1
	if DefaultSessionBatches[0] != 256 {
		t.Fatal("WithDefaults handed out DefaultSessionBatches itself")
	}
	// Set fields are kept.
	if k := (Config{Events: 1234, Repeats: 5}).WithDefaults(); k.Events != 1234 || k.Repeats != 5 {
		t.Fatalf("WithDefaults overwrote set fields: %+v", k)
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	doc := "events: 5000\nrepeats: 1\nlive_duration: 2s\nsession_batches: [128]\ndata_dir: .run/x\n"
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Events != 5000 || c.Repeats != 1 || c.LiveDuration != 2*time.Second || len(c.SessionBatches) != 1 || c.DataDir != ".run/x" {
		t.Fatalf("decoded %+v", c)
	}
}

func TestClearDataDirRefusesForeignFiles(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		wantErr string
	}{
		{"missing dir", nil, ""},
		{"a previous run's", []string{"clickhouse", "kafka", "model", ".model.tmp-123"}, ""},
		{"a checkout", []string{"kafka", "go.mod"}, `holds "go.mod"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tt.entries != nil {
				for _, e := range tt.entries {
					if err := os.MkdirAll(filepath.Join(dir, e), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			err := clearDataDir(dir)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("clearDataDir: %v", err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Fatalf("%s still exists after clearDataDir", dir)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("clearDataDir = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
				t.Fatalf("a refused wipe removed files: %v", err)
			}
		})
	}
}
