package main

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/cmd/recstream/internal/drills"
)

// TestDrillSuite is the CI drill: `recstream drill` with kill -9 at 10
// random points, the loss of one broker of three, a ClickHouse outage, a
// poison burst, a corrupted checkpoint and a model rollback, on a real
// Apache Kafka cluster (3 brokers, replication factor 3,
// min.insync.replicas 2), a real ClickHouse server and the recstream
// binary as the pipeline. Every
// guarantee must hold: nothing lost, final recommendations equal to the
// fault-free reference in both sinks, rewrites identical, every fault
// recovered from; and the report files must be written. About 3.5 minutes
// on 2 cores.
func TestDrillSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill suite takes about 3.5 minutes; run it without -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	jsonPath, mdPath, pngPath := filepath.Join(dir, "drill.json"), filepath.Join(dir, "drill.md"), filepath.Join(dir, "drill.png")
	const events, kills = 5000, 10
	// model-rollback runs with recommender: model and brings a reference
	// run of its own: it is here so that both recommenders are drilled.
	scenarios := []string{drills.ScenarioKill9, drills.ScenarioBrokerLoss, drills.ScenarioClickHouseOutage,
		drills.ScenarioPoisonBurst, drills.ScenarioCorruptCheckpoint, drills.ScenarioModelRollback}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	began := time.Now()
	code := execute(ctx, []string{"drill", "--scenarios", strings.Join(scenarios, ","), "--seed", "1",
		"--events", strconv.Itoa(events), "--kills", strconv.Itoa(kills), "--binary", bin, "--work-dir", filepath.Join(dir, "work"),
		"--json", jsonPath, "--report", mdPath, "--timeline", pngPath})
	t.Logf("drill took %s", time.Since(began).Round(time.Second))

	var rep drills.Report
	readDrillJSON(t, code, jsonPath, filepath.Join(dir, "work"), &rep)
	if md, err := os.ReadFile(mdPath); err != nil {
		t.Errorf("markdown report: %v", err)
	} else {
		t.Logf("report:\n%s", md)
	}
	if code != exitOK || !rep.Passed {
		t.Fatalf("drill exited %d; broken guarantees:\n  %s", code, strings.Join(rep.Broken, "\n  "))
	}

	if len(rep.Scenarios) != len(scenarios) {
		t.Fatalf("%d scenarios in the report, want %d", len(rep.Scenarios), len(scenarios))
	}
	ref := rep.Reference
	if ref.Produced != events || ref.Valid+ref.DeadLettered != events || ref.Compared == 0 {
		t.Fatalf("reference run: produced %d, valid %d, dead-lettered %d, users %d", ref.Produced, ref.Valid, ref.DeadLettered, ref.Compared)
	}
	for _, s := range rep.Scenarios {
		wantProduced := events
		if s.Name == drills.ScenarioPoisonBurst {
			wantProduced += drills.DefaultPoisonRecords
		}
		switch {
		case !s.Passed || len(s.Broken) > 0:
			t.Errorf("%s: broken: %v", s.Name, s.Broken)
		case s.Produced != wantProduced || s.Lost != 0 || s.Misrouted != 0 || s.Valid+s.DeadLettered != s.Produced:
			t.Errorf("%s: produced %d (want %d), valid %d, dead-lettered %d, lost %d, misrouted %d",
				s.Name, s.Produced, wantProduced, s.Valid, s.DeadLettered, s.Lost, s.Misrouted)
		case s.Valid != ref.Valid:
			t.Errorf("%s: %d valid events applied, the reference %d", s.Name, s.Valid, ref.Valid)
		case s.Differing != 0 || s.Compared != ref.Compared || s.Conflicts != 0:
			t.Errorf("%s: %d of %d users differ (reference has %d), %d conflicting rewrites", s.Name, s.Differing, s.Compared, ref.Compared, s.Conflicts)
		case len(s.Faults) == 0 || s.RTOSeconds <= 0:
			t.Errorf("%s: %d faults, RTO %.2f s: no fault was injected or timed", s.Name, len(s.Faults), s.RTOSeconds)
		}
		for i, f := range s.Faults {
			if f.Recovered < f.Start || f.RTOSeconds < 0 {
				t.Errorf("%s fault %d (%s): recovered at %.2f s, injected at %.2f s", s.Name, i+1, f.Kind, f.Recovered, f.Start)
			}
		}
		switch s.Name {
		case drills.ScenarioKill9:
			if len(s.Faults) != kills {
				t.Errorf("kill9: %d kills, want %d", len(s.Faults), kills)
			}
			if s.RewritesTopic == 0 {
				t.Error("kill9: no output record was rewritten: the restarts replayed nothing, so the drill proved little")
			}
		case drills.ScenarioPoisonBurst:
			if s.DeadLettered != ref.DeadLettered+drills.DefaultPoisonRecords {
				t.Errorf("poison-burst: %d dead-lettered, want the reference's %d plus the %d poison records",
					s.DeadLettered, ref.DeadLettered, drills.DefaultPoisonRecords)
			}
		case drills.ScenarioCorruptCheckpoint:
			if !containsNote(s.Notes, "restored generation") || !containsNote(s.Notes, "corrupt") {
				t.Errorf("corrupt-checkpoint: notes do not show the fallback to the previous generation: %v", s.Notes)
			}
		}
	}

	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("timeline is not a PNG: %v", err)
	}
}

// TestDrillKill9OverSeeds is the short CI version of make drill's sweep:
// kill -9 at 5 seeded points over two seeds, at the drill's default 20,000
// events, with one core kept busy beside the pipeline. At 5,000 events and
// on a quiet machine the drill suite passed while every run at 20,000 lost
// events (issue 16); every run here must lose nothing and end equal to its
// reference. About 3 minutes on 2 cores.
func TestDrillKill9OverSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("the kill -9 sweep takes about 3 minutes; run it without -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	jsonPath, mdPath := filepath.Join(dir, "sweep.json"), filepath.Join(dir, "sweep.md")
	const kills = 5
	seeds := []uint64{2, 3}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	began := time.Now()
	code := execute(ctx, []string{"drill", "--scenarios", drills.ScenarioKill9, "--seeds", "2-3", "--contention", "1",
		"--events", strconv.Itoa(drills.DefaultEvents), "--kills", strconv.Itoa(kills), "--binary", bin,
		"--work-dir", filepath.Join(dir, "work"), "--json", jsonPath, "--report", mdPath})
	t.Logf("sweep took %s", time.Since(began).Round(time.Second))
	var sw drills.Sweep
	readDrillJSON(t, code, jsonPath, filepath.Join(dir, "work"), &sw)
	if code != exitOK || !sw.Passed {
		md, _ := os.ReadFile(mdPath)
		t.Fatalf("drill exited %d; broken guarantees:\n  %s\n%s", code, strings.Join(sw.Broken, "\n  "), md)
	}
	if len(sw.Runs) != len(seeds) {
		t.Fatalf("%d runs in the sweep, want %d", len(sw.Runs), len(seeds))
	}
	for i, rep := range sw.Runs {
		if rep.Settings.Seed != seeds[i] || rep.Settings.Contention != 1 || len(rep.Scenarios) != 1 {
			t.Fatalf("run %d: seed %d, contention %d, %d scenarios", i, rep.Settings.Seed, rep.Settings.Contention, len(rep.Scenarios))
		}
		s, ref := rep.Scenarios[0], rep.Reference
		switch {
		case s.Produced != drills.DefaultEvents || s.Lost != 0 || s.Valid != ref.Valid || s.Valid+s.DeadLettered != s.Produced:
			t.Errorf("seed %d: produced %d, valid %d (reference %d), dead-lettered %d, lost %d",
				rep.Settings.Seed, s.Produced, s.Valid, ref.Valid, s.DeadLettered, s.Lost)
		case s.Differing != 0 || s.Compared != ref.Compared || s.Conflicts != 0:
			t.Errorf("seed %d: %d of %d users differ, %d conflicting rewrites", rep.Settings.Seed, s.Differing, s.Compared, s.Conflicts)
		case len(s.Faults) != kills || s.RewritesTopic == 0:
			t.Errorf("seed %d: %d kills (want %d), %d output records rewritten (a restart that replays nothing proves little)",
				rep.Settings.Seed, len(s.Faults), kills, s.RewritesTopic)
		}
	}
	if w := sw.Worst[0]; w.Runs != len(seeds) || w.Held != len(seeds) {
		t.Errorf("worst run %+v: want %d runs, all held", w, len(seeds))
	}
	// Each seed runs in its own directory; a run that held is removed once
	// the next begins, the last one stays (as would any that broke).
	if _, err := os.Stat(filepath.Join(dir, "work", "seed-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir of seed 2, which held, is still there (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "seed-3", "scenarios", drills.ScenarioKill9, "pipeline.log")); err != nil {
		t.Errorf("the last run's pipeline log is gone: %v", err)
	}
}

// readDrillJSON decodes the drill's JSON report at path into v, failing
// with the exit code and where the pipeline logs are when there is none.
func readDrillJSON(t *testing.T, code int, path, work string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("drill exited %d and wrote no JSON report: %v (pipeline logs under %s)", code, err, filepath.Join(work, "scenarios"))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func containsNote(notes []string, s string) bool {
	for _, n := range notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
