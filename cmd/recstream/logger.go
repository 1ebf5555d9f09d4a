package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

// newLogger builds the process logger on stderr: JSON lines for machines
// (log.format json, or auto when stderr is not a terminal), readable
// console lines on a terminal. secrets are masked wherever they would
// appear: nothing should log them, and this makes sure.
func newLogger(c config.LogConfig, secrets ...string) (*zap.Logger, error) {
	return buildLogger(c, os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), secrets)
}

// buildLogger is newLogger writing to w, with the terminal test given.
func buildLogger(c config.LogConfig, w io.Writer, terminal bool, secrets []string) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := c.Format
	if format == "auto" || format == "" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	opts := []zap.Option{zap.AddCaller()}
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		if !terminal {
			ec.EncodeLevel = zapcore.CapitalLevelEncoder // no escape codes in files
		}
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "ts"
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
		opts = append(opts, zap.AddStacktrace(zapcore.ErrorLevel))
	default:
		return nil, fmt.Errorf("log.format: must be json, console or auto, got %q", c.Format)
	}
	ws := zapcore.Lock(zapcore.AddSync(newRedactor(w, secrets)))
	opts = append(opts, zap.ErrorOutput(ws))
	core := zapcore.NewCore(enc, ws, zap.NewAtomicLevelAt(level))
	if format == "json" {
		// As zap's production preset: past 100 identical messages a second,
		// keep one in 100, so a retry loop cannot flood the collector.
		core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	}
	return zap.New(core, opts...), nil
}

// minRedactBytes is the shortest secret the redactor masks: masking a
// one- or two-letter password would mangle every log line without hiding
// anything an attacker could not guess.
const minRedactBytes = 4

// redactor replaces secrets in whatever is written through it, both as
// they are and as a JSON encoder escapes them.
type redactor struct {
	w        io.Writer
	mu       sync.Mutex
	patterns [][]byte
}

func newRedactor(w io.Writer, secrets []string) io.Writer {
	var patterns [][]byte
	for _, s := range secrets {
		if len(s) < minRedactBytes {
			continue
		}
		patterns = append(patterns, []byte(s))
		if quoted, err := json.Marshal(s); err == nil {
			if esc := quoted[1 : len(quoted)-1]; !bytes.Equal(esc, []byte(s)) {
				patterns = append(patterns, esc)
			}
		}
	}
	if len(patterns) == 0 {
		return w
	}
	return &redactor{w: w, patterns: patterns}
}

func (r *redactor) Write(p []byte) (int, error) {
	out := p
	for _, pat := range r.patterns {
		if bytes.Contains(out, pat) {
			out = bytes.ReplaceAll(out, pat, []byte(config.Mask))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
