package drills

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// corruptCheckpointScenario freezes the pipeline (SIGSTOP), corrupts the
// newest checkpoint generation on disk (bytes flipped in the middle of its
// largest file, as a failing disk would), kills the pipeline (SIGKILL) and
// restarts it. The restart must find the corruption by the manifest's
// checksums, log it, restore the previous generation instead, and replay
// from that generation's offsets to the same final result.
type corruptCheckpointScenario struct {
	// corrupted is the generation corrupted, fallback the one before it;
	// restart is the pipeline started after the corruption. Zero until
	// inject did its work.
	corrupted, fallback uint64
	restart             *pipelineProcess
}

func (corruptCheckpointScenario) name() string { return ScenarioCorruptCheckpoint }

func (corruptCheckpointScenario) describe(Config) string {
	return "the newest checkpoint generation corrupted on disk, then kill -9 and restart: the corruption is " +
		"detected and logged, the previous generation restored, and the result is the same"
}

func (corruptCheckpointScenario) expected(cfg Config) time.Duration {
	return cfg.SessionTimeout + 10*time.Second
}

func (corruptCheckpointScenario) poison(Config) int { return 0 }

func (corruptCheckpointScenario) prepare(context.Context, *drillRun) error { return nil }

// Log messages of the restart that the scenario looks for (cmd/recstream
// checkpointing.go and state.CheckpointStore.LoadLatest).
const (
	logCorruptGeneration = "checkpoint generation is corrupt or unreadable; trying the previous one"
	logRestored          = "state restored from checkpoint"
)

func (sc *corruptCheckpointScenario) inject(ctx context.Context, d *drillRun) error {
	if err := d.stream.WaitProduced(ctx, len(d.records)*4/10); err != nil {
		return err
	}
	dir := d.pcfg.Checkpoint.Dir
	// Two generations at least: the one to corrupt and one to fall back on.
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		gens, err := generations(dir)
		if err != nil {
			return err
		}
		if len(gens) >= 2 {
			break
		}
		select {
		case <-waitCtx.Done():
			return fmt.Errorf("fewer than two checkpoint generations in %s after a minute: %w", dir, waitCtx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	start := time.Now()
	// Frozen, the pipeline cannot write a newer generation meanwhile.
	if err := d.proc.Pause(); err != nil {
		return err
	}
	gens, err := generations(dir)
	if err != nil {
		return err
	}
	newest := gens[0]
	file, err := corruptGeneration(filepath.Join(dir, generationDir(newest)))
	if err != nil {
		return err
	}
	if err := d.killPipeline(); err != nil {
		return err
	}
	if err := d.startPipeline(); err != nil {
		return err
	}
	restarted := time.Now()
	d.fault("checkpoint corrupted + kill -9", fmt.Sprintf("generation %d (%s), previous generation %d", newest, file, gens[1]), start, restarted)
	sc.corrupted, sc.fallback, sc.restart = newest, gens[1], d.proc
	return d.waitRecovered(ctx, restarted)
}

// check reads the restart's log: it must name the corrupt generation and
// restore an older one.
func (sc *corruptCheckpointScenario) check(_ context.Context, _ *drillRun, _ *outcome, res *ScenarioResult) error {
	if sc.restart == nil {
		return nil // inject failed; that is already broken
	}
	lines, err := sc.restart.Log()
	if err != nil {
		return err
	}
	var flagged, restored bool
	for _, l := range lines {
		switch {
		case l.Msg == logCorruptGeneration && l.Generation == sc.corrupted:
			flagged = true
			res.note("the restart logged: %q generation=%d error=%q", l.Msg, l.Generation, l.Error)
		case l.Msg == logRestored && !restored:
			restored = true
			switch {
			case l.Generation == sc.corrupted:
				res.breaks("the restart restored the corrupted generation %d", sc.corrupted)
			case l.Generation > sc.corrupted:
				res.breaks("the restart restored generation %d, newer than the corrupted %d", l.Generation, sc.corrupted)
			default:
				res.note("the restart restored generation %d (the newest valid one was %d)", l.Generation, sc.fallback)
				if l.Generation != sc.fallback {
					res.breaks("the restart restored generation %d, not the previous valid one %d", l.Generation, sc.fallback)
				}
			}
		}
	}
	if !flagged {
		res.breaks("the restart did not log generation %d as corrupt (%q)", sc.corrupted, logCorruptGeneration)
	}
	if !restored {
		res.breaks("the restart did not restore any checkpoint (%q)", logRestored)
	}
	return nil
}

// generations lists the generation numbers in dir, newest first.
func generations(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var gens []uint64
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), "gen-"); ok && e.IsDir() {
			if g, err := strconv.ParseUint(n, 10, 64); err == nil {
				gens = append(gens, g)
			}
		}
	}
	slices.Sort(gens)
	slices.Reverse(gens)
	return gens, nil
}

func generationDir(g uint64) string { return fmt.Sprintf("gen-%020d", g) }

// corruptGeneration flips bytes in the middle of the largest file of a
// generation (a partition's state; the manifest when there is none) and
// returns the file's name.
func corruptGeneration(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read checkpoint generation: %w", err)
	}
	var name string
	var size int64 = -1
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Size() > size {
			name, size = e.Name(), fi.Size()
		}
	}
	if name == "" {
		return "", fmt.Errorf("checkpoint generation %s holds no file", dir)
	}
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	mid := len(data) / 2
	for i := mid; i < min(len(data), mid+16); i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("corrupt %s: %w", path, err)
	}
	return name, nil
}
