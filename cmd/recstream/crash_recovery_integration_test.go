package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// finalRecs is what a run leaves behind: the ClickHouse recommendations
// after FINAL, and the newest record per key in the output topic (what
// compaction keeps), both rendered to comparable strings.
type finalRecs struct {
	clickhouse map[string]string
	topic      map[string]string
}

func collectFinal(t *testing.T, s *stack) finalRecs {
	t.Helper()
	ctx := context.Background()
	conn := openClickHouse(t, s)
	rows, err := conn.Query(ctx, `SELECT user_id, items, scores, model_version, version, event_ts_ms, src_partition, src_offset,
		toString(produced_at) FROM recommendations FINAL ORDER BY user_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := finalRecs{clickhouse: map[string]string{}, topic: map[string]string{}}
	for rows.Next() {
		var (
			user, model, at string
			items           []string
			scores          []float32
			version         uint64
			eventTs, offset int64
			partition       int32
		)
		if err := rows.Scan(&user, &items, &scores, &model, &version, &eventTs, &partition, &offset, &at); err != nil {
			t.Fatal(err)
		}
		out.clickhouse[user] = fmt.Sprintf("%v|%v|%s|%d|%d|%d|%d|%s", items, scores, model, version, eventTs, partition, offset, at)
	}
	for _, r := range consumeAll(t, s.broker.Addrs(), s.cfg.Output.Topic) {
		out.topic[string(r.Key)] = string(r.Value) // later offsets win, as compaction keeps them
	}
	return out
}

func diffFinal(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s:\n  reference %s\n  recovered %s", k, v, got[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+": only in the recovered run")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %d of %d users differ from the fault-free run; first:\n%s", what, len(diffs), len(want), strings.Join(first(diffs), "\n"))
	}
}

// TestKillNineAtRandomPointsGivesTheSameResult runs the same input twice:
// once without faults, once with the real binary killed with SIGKILL at
// random points and restarted (checkpoints on). The final ClickHouse table
// and the compacted output topic must be identical.
func TestKillNineAtRandomPointsGivesTheSameResult(t *testing.T) {
	const events = 40000
	bin := buildBinary(t)

	ref := startStack(t, 4)
	refInput := produce(t, ref, 31, events, 0.01)
	runUntil(t, ref, uint64(refInput.total))
	want := collectFinal(t, ref)

	s := startStack(t, 4)
	produce(t, s, 31, events, 0.01)
	s.cfg.Checkpoint.Dir = filepath.Join(t.TempDir(), "checkpoints")
	s.cfg.Checkpoint.Interval = 100 * time.Millisecond
	s.cfg.Input.SessionTimeout = 6 * time.Second
	s.cfg.Input.HeartbeatInterval = 500 * time.Millisecond
	cfgPath := writeConfig(t, s)

	// Kill points spread over the input, seeded: each run is killed a few
	// random milliseconds after its committed count passes its point, so
	// that every kill lands while the input is being consumed however fast
	// the machine is (a kill timed from start-up alone could come after a
	// fast run had finished). A restart first waits for the killed
	// member's session to expire, then resumes.
	rng := rand.New(rand.NewPCG(7, 7))
	var points []int64
	for i := range 4 {
		points = append(points, int64(float64(events)*(0.1+0.18*float64(i)+0.08*rng.Float64())))
	}
	kills := 0
	for _, at := range points {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "RECSTREAM_INPUT_BATCH_MAX_ROWS=400", "RECSTREAM_LOG_FORMAT=json")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, func() bool { return committedRecords(t, s) >= at })
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
		if committedRecords(t, s) >= events {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			break
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		t.Logf("kill -9 #%d (point %d): %d of %d records committed", kills, at, committedRecords(t, s), events)
	}
	if kills < 3 {
		t.Fatalf("only %d kills happened before the input was consumed; the test did not exercise recovery", kills)
	}
	// A last, undisturbed run finishes the input.
	runUntilCommitted(t, s, int64(refInput.total))
	got := collectFinal(t, s)
	diffFinal(t, "clickhouse recommendations FINAL", want.clickhouse, got.clickhouse)
	diffFinal(t, "compacted output topic", want.topic, got.topic)
}

// TestReplayRebuildsALostClickHouse loses the ClickHouse database after a
// run and rebuilds it twice: from the input (replay with fresh state) and
// from the compacted output topic. Both give back the same final table; a
// replay run twice changes nothing.
func TestReplayRebuildsALostClickHouse(t *testing.T) {
	s := startStack(t, 4)
	p := produce(t, s, 41, 8000, 0.02)
	runUntil(t, s, uint64(p.total))
	want := collectFinal(t, s)
	ctx := context.Background()
	conn := openClickHouse(t, s)
	lose := func() {
		t.Helper()
		if err := conn.Exec(ctx, "DROP DATABASE "+s.cfg.ClickHouse.Database); err != nil {
			t.Fatal(err)
		}
	}
	log := zaptest.NewLogger(t)
	var out bytes.Buffer

	lose()
	for i := 0; i < 2; i++ { // the second run must change nothing
		if err := replayInput(ctx, s.cfg, replayOptions{fromOffset: "earliest", sinks: "clickhouse"}, log, &out); err != nil {
			t.Fatal(err)
		}
		got := collectFinal(t, s)
		diffFinal(t, fmt.Sprintf("clickhouse after input replay #%d", i+1), want.clickhouse, got.clickhouse)
		var events uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM events FINAL").Scan(&events); err != nil {
			t.Fatal(err)
		}
		if events != uint64(p.byKind[""]) {
			t.Errorf("events FINAL after replay #%d = %d, want %d", i+1, events, p.byKind[""])
		}
	}

	lose()
	if err := rebuildClickHouseFromOutput(ctx, s.cfg, 1000, log, &out); err != nil {
		t.Fatal(err)
	}
	got := collectFinal(t, s)
	diffFinal(t, "clickhouse rebuilt from the output topic", want.clickhouse, got.clickhouse)
	t.Log(out.String())
}
