package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/cmd/recstream/internal/benchmark"
)

// TestBenchCommandTiny runs `recstream bench` end to end on a tiny data set
// (real broker, ClickHouse server and ONNX Runtime), so that the harness
// cannot rot: every stage and ceiling is measured, the goals are judged,
// and the Markdown, JSON and PNG outputs are written.
func TestBenchCommandTiny(t *testing.T) {
	dir := t.TempDir()
	mdPath, jsonPath, plotPath := filepath.Join(dir, "out", "bench.md"), filepath.Join(dir, "out", "bench.json"), filepath.Join(dir, "out", "bench.png")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := newRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"bench", "--data-dir", filepath.Join(dir, "data"),
		"--events", "3000", "--users", "300", "--items", "500", "--partitions", "4", "--repeats", "1",
		"--live-duration", "1s", "--session-batches", "64", "--run-time", "20ms", "--state-users", "2000",
		"--markdown", mdPath, "--json", jsonPath, "--plot", plotPath})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("recstream bench: %v (run make setup if ClickHouse or ONNX Runtime is missing)\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "[7/8] whole pipeline") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchmark.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("--json output does not decode: %v", err)
	}
	if rep.Data.Records != 3000 || rep.Data.ValidEvents == 0 || rep.Data.Recommendations == 0 {
		t.Errorf("data summary %+v", rep.Data)
	}
	for _, id := range []string{"produce.input.kafka-go", "produce.input.franz-go",
		"consume.kafka-go-reader", "consume.kafka-go-readbatch", "consume.franz-go", "consume.consumer",
		"score.ort.b64", "score.ort.b64.spin", "score.scorer", "score.goloop",
		"clickhouse.sink", "clickhouse.raw-rows", "clickhouse.raw-columns",
		"produce.recs.kafka-go", "kafka-output.batched.franz-go", "kafka-output.sink", "pipeline.max"} {
		row := rep.Row(id)
		switch {
		case row == nil:
			t.Errorf("row %s missing", id)
		case len(row.Value.Samples) != 1 || row.Value.Median <= 0:
			t.Errorf("row %s: %+v, want one positive sample", id, row.Value)
		}
	}
	for _, stage := range []string{benchmark.StageProduce, benchmark.StageConsume, benchmark.StageScore,
		benchmark.StageClickHouse, benchmark.StageKafkaOutput} {
		if rep.BestCeiling(stage) == nil {
			t.Errorf("stage %s has no ceiling", stage)
		}
	}
	for _, id := range []string{"consume.consumer", "score.scorer", "clickhouse.sink", "kafka-output.sink", "pipeline.max"} {
		if row := rep.Row(id); row != nil && (row.Against == "" || row.Ratio <= 0) {
			t.Errorf("row %s is not compared with a ceiling: against %q, ratio %v", id, row.Against, row.Ratio)
		}
	}
	if len(rep.Latency) != 2 {
		t.Fatalf("%d latency rows, want 50%% and 100%%", len(rep.Latency))
	}
	for _, l := range rep.Latency {
		if l.Rate <= 0 || l.P99.Median <= 0 || l.P50.Median > l.P99.Median || l.Achieved.Median <= 0 {
			t.Errorf("latency at %.0f%%: %+v", l.Load*100, l)
		}
	}
	if b := rep.Resources.StateBytesPerUser; b < 64*4 || b > 5000 {
		t.Errorf("state bytes per user = %.0f, want at least the 256 bytes of a D=64 state and at most 5000", b)
	}
	if len(rep.Resources.Stages) != 8 || rep.Resources.Stages[6].PeakRSSBytes <= 0 {
		t.Errorf("resources per stage: %+v", rep.Resources.Stages)
	}
	if len(rep.Goals) != 4 {
		t.Fatalf("%d goals, want 4", len(rep.Goals))
	}
	for _, g := range rep.Goals {
		if g.Measured == "" || g.Measured == "not measured" || (!g.Pass && g.Limit == "") {
			t.Errorf("goal %+v", g)
		}
	}

	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(md, stdout.Bytes()) {
		t.Error("--markdown file differs from what was printed")
	}
	for _, want := range []string{"### Throughput, each stage against its ceiling", "### Event-to-recommendation latency", "### Goals", "**ceiling**"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("--plot output is not a PNG: %v", err)
	}
}

// TestBenchRejectsBadSizes: bad sizes are usage errors, before anything
// starts.
func TestBenchRejectsBadSizes(t *testing.T) {
	tests := [][]string{
		{"bench", "--events", "10"},
		{"bench", "--repeats", "-1"},
		{"bench", "--items", "5"},
	}
	for _, args := range tests {
		if got := execute(context.Background(), args); got != exitUsage {
			t.Errorf("recstream %s: exit %d, want %d", strings.Join(args, " "), got, exitUsage)
		}
	}
}
