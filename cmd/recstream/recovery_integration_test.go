package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"gopkg.in/yaml.v3"
)

// TestClickHouseOutagePausesConsumption kills the ClickHouse server while
// the pipeline runs: consumption must pause (nothing committed past what
// ClickHouse holds), the sink is retried, and after the restart every event
// lands exactly once in effect.
func TestClickHouseOutagePausesConsumption(t *testing.T) {
	s := startStack(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := buildPipeline(ctx, s.cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.pipeline.Run(runCtx) }()

	first := produce(t, s, 11, 3000, 0.02)
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), uint64(first.total), time.Minute, done); err != nil {
		t.Fatal(err)
	}
	if err := s.ch.Kill(); err != nil {
		t.Fatal(err)
	}
	second := produce(t, s, 12, 3000, 0.02)
	// While ClickHouse is down the pipeline must not get past its first
	// batch of the new data: it retries that batch and takes no other.
	// Waiting for retries rather than for a fixed time keeps this true on
	// a machine slow to fetch the new data.
	waitFor(t, time.Minute, func() bool { return c.pipeline.Stats().Snapshot().Retries["clickhouse"] >= 5 })
	stalled := c.pipeline.Stats().Records.Load()
	if stalled != uint64(first.total) {
		t.Fatalf("pipeline committed %d records with ClickHouse down, want it to stay at %d", stalled, first.total)
	}
	if err := s.ch.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitCaughtUp(ctx, c.pipeline.Stats(), uint64(first.total+second.total), time.Minute, done); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	users := map[string]bool{}
	for u := range first.validUsers {
		users[u] = true
	}
	for u := range second.validUsers {
		users[u] = true
	}
	conn := openClickHouse(t, s)
	var events, distinctRecs uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events FINAL").Scan(&events); err != nil {
		t.Fatal(err)
	}
	want := uint64(first.byKind[""] + second.byKind[""])
	if events != want {
		t.Errorf("events FINAL = %d, want %d valid events", events, want)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM recommendations FINAL").Scan(&distinctRecs); err != nil {
		t.Fatal(err)
	}
	if distinctRecs != uint64(len(users)) {
		t.Errorf("recommendations FINAL = %d users, want %d", distinctRecs, len(users))
	}
	assertCommittedToEnd(t, s)
}

// buildBinary compiles recstream once per test that needs the real process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "recstream")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeConfig(t *testing.T, s *stack) string {
	t.Helper()
	raw, err := yaml.Marshal(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "recstream.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunStopsGracefullyOnSIGTERM runs the real binary, sends SIGTERM in
// the middle of the stream, and expects exit 0 after the in-flight batch
// was drained; a second run then finishes the input with nothing lost.
func TestRunStopsGracefullyOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	s := startStack(t, 4)
	p := produce(t, s, 21, 20000, 0.01)
	cfgPath := writeConfig(t, s)

	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stderr = &stderr
	// Small batches: each costs both sinks' round trips and a commit, so
	// the input takes far longer than the wait below reacts.
	cmd.Env = append(os.Environ(), "RECSTREAM_INPUT_BATCH_MAX_ROWS=100", "RECSTREAM_LOG_FORMAT=json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // already exited on the normal path
	// Let it commit part of the input (a first commit, not a fixed time,
	// which a slow machine could need more of), then ask it to stop.
	waitFor(t, time.Minute, func() bool { return committedRecords(t, s) > 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("recstream run exited with %d after SIGTERM, want 0\n%s", exitErr.ExitCode(), stderr.String())
	} else if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "pipeline stopped") {
		t.Fatalf("no graceful-stop log line:\n%s", stderr.String())
	}

	// A second run picks up from the committed offsets and finishes.
	committed := committedRecords(t, s)
	if committed == 0 || committed >= int64(p.total) {
		t.Fatalf("the first run committed %d of %d records before SIGTERM: want part of them\n%s", committed, p.total, stderr.String())
	}
	t.Logf("first run committed %d of %d records before SIGTERM", committed, p.total)
	runUntil(t, s, uint64(int64(p.total)-committed))
	conn := openClickHouse(t, s)
	var events uint64
	ctx := context.Background()
	waitFor(t, time.Minute, func() bool {
		return conn.QueryRow(ctx, "SELECT count() FROM events FINAL").Scan(&events) == nil && events == uint64(p.byKind[""])
	})
	assertCommittedToEnd(t, s)
}

// TestBadConfigurationStopsStartUp checks the exit code and that the message
// names the field.
func TestBadConfigurationStopsStartUp(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name, yaml string
		env        []string
		wantField  string
	}{
		{"negative batch rows", "kafka:\n  brokers: [127.0.0.1:1]\nscorer:\n  model_dir: m\ninput:\n  batch:\n    max_rows: -1\n", nil, "max_rows"},
		{"missing model dir", "kafka:\n  brokers: [127.0.0.1:1]\n", nil, "scorer.model_dir"},
		{"typo in a field", "kafka:\n  brokerz: [127.0.0.1:1]\n", nil, "brokerz"},
		{"bad env override", "kafka:\n  brokers: [127.0.0.1:1]\nscorer:\n  model_dir: m\n", []string{"RECSTREAM_PIPELINE_RETRY_MAX=soon"}, "RECSTREAM_PIPELINE_RETRY_MAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "run", "--config", path)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitUsage {
				t.Fatalf("exit = %v, want %d\n%s", err, exitUsage, out)
			}
			if !strings.Contains(string(out), tt.wantField) {
				t.Fatalf("message does not name %q:\n%s", tt.wantField, out)
			}
		})
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
