package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

func TestLogFormats(t *testing.T) {
	tests := []struct {
		format   string
		terminal bool
		wantJSON bool
	}{
		{"json", true, true},      // asked for: JSON even on a terminal
		{"auto", false, true},     // production: stderr is a pipe or a file
		{"auto", true, false},     // a person at a terminal
		{"console", false, false}, // asked for
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log, err := buildLogger(config.LogConfig{Level: "info", Format: tt.format}, &buf, tt.terminal, nil)
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("hidden at info")
		log.Info("partitions assigned", zap.Ints("partitions", []int{0, 1}))
		_ = log.Sync()
		out := strings.TrimSpace(buf.String())
		if strings.Contains(out, "hidden at info") {
			t.Errorf("%s: a debug line passed level info", tt.format)
		}
		lines := strings.Split(out, "\n")
		if len(lines) != 1 {
			t.Fatalf("%s (terminal %v): %d lines, want 1:\n%s", tt.format, tt.terminal, len(lines), out)
		}
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(lines[0]), &rec) == nil
		if isJSON != tt.wantJSON {
			t.Errorf("%s (terminal %v): JSON = %v, want %v: %s", tt.format, tt.terminal, isJSON, tt.wantJSON, lines[0])
		}
		if isJSON {
			for _, k := range []string{"ts", "level", "msg", "caller", "partitions"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("%s: JSON line lacks %q: %s", tt.format, k, lines[0])
				}
			}
		} else {
			if !strings.Contains(lines[0], "INFO") || !strings.Contains(lines[0], "partitions assigned") {
				t.Errorf("%s: console line %q lacks the level or message", tt.format, lines[0])
			}
			if hasEscape := strings.Contains(lines[0], "\x1b["); hasEscape != tt.terminal {
				t.Errorf("%s (terminal %v): colour escapes = %v", tt.format, tt.terminal, hasEscape)
			}
		}
	}
	if _, err := buildLogger(config.LogConfig{Level: "loud", Format: "json"}, &bytes.Buffer{}, false, nil); err == nil {
		t.Error("accepted level loud")
	}
}

// TestLoggerMasksSecrets checks the last line of defence: a secret that
// reaches a log line anyway is masked, raw or JSON-escaped.
func TestLoggerMasksSecrets(t *testing.T) {
	secrets := []string{`pa"ss\word-1`, "plain-secret-2", "ab"}
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := buildLogger(config.LogConfig{Level: "info", Format: format}, &buf, false, secrets)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("connect failed: plain-secret-2 refused", zap.String("password", secrets[0]), zap.String("user", "ab"))
		_ = log.Sync()
		out := buf.String()
		for _, s := range []string{secrets[0], "plain-secret-2", `pa\"ss\\word-1`} {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q in %s", format, s, out)
			}
		}
		if strings.Count(out, config.Mask) != 2 {
			t.Errorf("%s: want 2 masks in %s", format, out)
		}
		if !strings.Contains(out, "ab") {
			t.Errorf("%s: a 2-byte secret should not be masked (it would mangle every line): %s", format, out)
		}
	}
}
