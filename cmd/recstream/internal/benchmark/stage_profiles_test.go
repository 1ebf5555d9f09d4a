package benchmark

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStageProfilerWritesBothProfiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pprof")
	p := stageProfiler{dir: dir}
	stop, err := p.start(4, "score: raw ONNX Runtime, scorers.Scorer, plain Go loop")
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := range 3_000_000 { // something to sample
		sum += i % 7
	}
	_ = sum
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu-04-score.pprof", "allocs-04-score.pprof"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	off, err := stageProfiler{}.start(1, "x")
	if err != nil || off() != nil {
		t.Errorf("without a directory the profiler must do nothing, got %v", err)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"set-up: servers, data set, model": "set-up",
		"Kafka output: sink, raw produce":  "kafka-output",
		"whole pipeline":                   "whole-pipeline",
		"scorer state per user":            "scorer-state-per-user",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
