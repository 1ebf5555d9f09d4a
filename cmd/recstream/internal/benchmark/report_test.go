package benchmark

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/schemas"
)

// sampleReport is a report as Run leaves it before the goals are checked,
// with figures in the range this machine measures.
func sampleReport(pipelineRate, scorerRate, sinkRate, p99 float64) *Report {
	r := &Report{Config: Config{}.WithDefaults(), Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Seconds: 300,
		Machine: Machine{CPUs: 2, GoVersion: "go1.26.8", OS: "linux/amd64", LoadBefore: 4.5, LoadAfter: 1.0,
			ONNXRuntime: "1.24.1", ClickHouse: "18.16.1", Device: "cpu"},
		Data: DataSummary{Records: 200_000, Bytes: 36_000_000, ValidEvents: 199_000, EventBatches: 40,
			Recommendations: 100_000, SinkRecords: 100_000, SinkRecommendations: 50_000, ClickHouseRows: 149_500}}
	fig := func(v float64) Figure { return NewFigure([]float64{v * 0.95, v, v * 1.05}) }
	cores := NewFigure([]float64{1.9})
	chCores := NewFigure([]float64{0.6})
	r.addRow(Row{ID: "consume.franz-go", Stage: StageConsume, Name: "raw consume: franz-go", Unit: "events/s", Value: fig(2_000_000), Ceiling: true, Cores: cores,
		OtherCores: NewFigure([]float64{0.8})})
	r.addRow(Row{ID: "consume.kafka-go-reader", Stage: StageConsume, Name: "raw consume: kafka-go | Reader", Unit: "events/s", Value: fig(900_000), Ceiling: true})
	r.addRow(Row{ID: "consume.consumer", Stage: StageConsume, Name: "consumers.Consumer", Unit: "events/s", Value: fig(700_000), Cores: cores})
	r.markBest(StageConsume)
	r.compare("consume.consumer", "consume.franz-go")
	r.addRow(Row{ID: "score.ort.b256", Stage: StageScore, Name: "raw ONNX Runtime B=256", Unit: "refreshes/s", Value: fig(100_000), Ceiling: true})
	r.addRow(Row{ID: "score.scorer", Stage: StageScore, Name: "scorer", Unit: "refreshes/s", Value: fig(scorerRate)})
	r.addRow(Row{ID: "score.scorer.events", Stage: StageScore, Name: "scorer in events", Unit: "events/s", Value: fig(scorerRate * 2)})
	r.markBest(StageScore)
	r.compare("score.scorer", "score.ort.b256")
	r.addRow(Row{ID: "clickhouse.raw-columns", Stage: StageClickHouse, Name: "raw insert", Unit: "rows/s", Value: fig(400_000), Ceiling: true})
	r.addRow(Row{ID: "clickhouse.sink", Stage: StageClickHouse, Name: "sink", Unit: "rows/s", Value: fig(sinkRate)})
	r.markBest(StageClickHouse)
	r.compare("clickhouse.sink", "clickhouse.raw-columns")
	r.addRow(Row{ID: "kafka-output.sink", Stage: StageKafkaOutput, Name: "kafka sink", Unit: "records/s", Value: fig(250_000)})
	r.addRow(Row{ID: "pipeline.max", Stage: StagePipeline, Name: "whole pipeline", Unit: "events/s", Value: fig(pipelineRate), Cores: cores,
		ClickHouseCores: chCores})
	r.compare("pipeline.max", "consume.franz-go")
	r.Breakdown = PipelineBreakdown{BusySeconds: 3, ScoreShare: 0.9, WriteShare: 0.4, SinkShare: map[string]float64{"clickhouse": 0.4, "kafka": 0.2},
		Batches: 40, RecordsPerBatch: 5000}
	r.Latency = []LatencyRow{
		{Load: 0.5, Rate: pipelineRate / 2, Achieved: fig(pipelineRate / 2), P50: fig(p99 / 2), P95: fig(p99 * 0.9), P99: fig(p99), Max: fig(p99 * 1.1),
			Events: 1000, BatchScoreMs: fig(20), BatchWriteMs: fig(15), BatchRecords: fig(2000)},
		{Load: 1, Rate: pipelineRate, Achieved: fig(pipelineRate), P50: fig(p99), P95: fig(p99 * 2), P99: fig(p99 * 3), Max: fig(p99 * 4),
			Events: 2000, BatchScoreMs: fig(50), BatchWriteMs: fig(30), BatchRecords: fig(4000)},
	}
	r.Resources = Resources{StateBytesPerUser: 498, StateUsers: 100_000, StateDim: 64,
		Stages: []StageResources{{Stage: "whole pipeline", PeakRSSBytes: 300 << 20, ClickHouseRSSBytes: 250 << 20, IOPressure: 0.12}}}
	return r
}

func TestMarkBestAndCompare(t *testing.T) {
	r := sampleReport(1_700_000, 60_000, 300_000, 90)
	if best := r.BestCeiling(StageConsume); best == nil || best.ID != "consume.franz-go" {
		t.Fatalf("best consume ceiling = %+v, want franz-go", best)
	}
	if r.Row("consume.kafka-go-reader").Best {
		t.Fatal("a slower ceiling is marked best")
	}
	if got := r.Row("pipeline.max").Ratio; got != 0.85 {
		t.Fatalf("pipeline ratio = %v, want 0.85", got)
	}
	if r.Row("no.such.row") != nil {
		t.Fatal("Row found a row that does not exist")
	}
}

func TestGoals(t *testing.T) {
	tests := []struct {
		name                        string
		pipeline, scorer, sink, p99 float64
		wantPass                    [4]bool
		wantLimit                   [4]string // substrings of each goal's Limit
	}{
		{"all met", 1_700_000, 60_000, 300_000, 90, [4]bool{true, true, true, true},
			[4]string{"scoring: 90% of the busy time", "ONNX Runtime runs explain about", "", "lingers up to 50 ms"}},
		{"all missed", 500_000, 30_000, 200_000, 400, [4]bool{false, false, false, false},
			[4]string{"scoring: 90% of the busy time, 74.1k events/s while in the pipeline (alone it runs at 60.0k events/s)", "Go-side work per batch", "", "remaining 315 ms of the p99"}},
		{"latency with full batches", 500_000, 30_000, 200_000, 400, [4]bool{false, false, false, false},
			[4]string{"", "", "", "does not keep up at this rate live: batches are full (4900 of 5000 records on average), so events queue in Kafka. " +
				"Live, a batch spends 20 ms in the scorer and 15 ms in the sinks: the scorer shares the 2 cores with ClickHouse (0.0 cores"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport(tt.pipeline, tt.scorer, tt.sink, tt.p99)
			if strings.Contains(tt.name, "full batches") {
				r.Latency[0].BatchRecords = NewFigure([]float64{4900})
			}
			work := scorerWork{refreshes: 100_000, rows: 100_500, runs: 400, batchUsers: 256, seconds: 100_000 / tt.scorer}
			goals := evaluateGoals(r, work, map[string]cpuPerRow{"clickhouse.sink": {client: 2.6, server: 1.2}, "clickhouse.raw-columns": {client: 1.3, server: 1.2}})
			if len(goals) != 4 {
				t.Fatalf("%d goals, want 4", len(goals))
			}
			for i, g := range goals {
				if g.Pass != tt.wantPass[i] {
					t.Errorf("goal %q: pass %v, want %v (measured %s)", g.Name, g.Pass, tt.wantPass[i], g.Measured)
				}
				if !strings.Contains(g.Limit, tt.wantLimit[i]) {
					t.Errorf("goal %q: limit %q, want it to contain %q", g.Name, g.Limit, tt.wantLimit[i])
				}
				if !g.Pass && g.Limit == "" {
					t.Errorf("goal %q missed without saying what limits it", g.Name)
				}
			}
			// The scorer's session share: 100,500 rows at 100k/s = 1.005 s
			// of the scorer's 100,000/rate seconds.
			wantShare := fmt.Sprintf("about %.0f%%", 100*1.005/(100_000/tt.scorer))
			if !strings.Contains(goals[1].Limit, wantShare) {
				t.Errorf("scorer limit %q does not give the session share %s", goals[1].Limit, wantShare)
			}
			if !strings.Contains(goals[2].Limit, "the sink's own work") {
				t.Errorf("clickhouse limit %q: the sink uses twice the client CPU, it should say so", goals[2].Limit)
			}
		})
	}
}

func TestGoalsWhenInputBound(t *testing.T) {
	r := sampleReport(500_000, 60_000, 300_000, 90)
	r.Breakdown.ScoreShare, r.Breakdown.WriteShare = 0.2, 0.3
	r.Breakdown.SinkShare = map[string]float64{"clickhouse": 0.3, "kafka": 0.1}
	g := pipelineGoal(r)
	if g.Pass || !strings.Contains(g.Limit, "input:") || !strings.Contains(g.Limit, "the consumer (fetch + decode + Arrow) alone runs at 700k events/s") {
		t.Fatalf("input-bound pipeline goal = %+v", g)
	}
	if !strings.Contains(g.Limit, "the cores are saturated") || !strings.Contains(g.Limit, "loaded by others too") ||
		!strings.Contains(g.Limit, "ClickHouse 0.6 of them") {
		t.Fatalf("limit %q should say the 2 cores were saturated and the machine loaded", g.Limit)
	}
}

func TestGoalsWithNothingMeasured(t *testing.T) {
	goals := evaluateGoals(&Report{}, scorerWork{}, nil)
	for _, g := range goals {
		if g.Pass || g.Measured != "not measured" || g.Limit == "" {
			t.Errorf("goal %q on an empty report: %+v, want a MISS saying it was not measured", g.Name, g)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := sampleReport(500_000, 30_000, 300_000, 400)
	r.Goals = evaluateGoals(r, scorerWork{refreshes: 1, rows: 1, runs: 1, batchUsers: 256, seconds: 1}, nil)
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| stage | what | median (min–max) | unit | against the ceiling | cores busy (others) |",
		"| consume | raw consume: franz-go | 2.00M (1.90M–2.10M) | events/s | **ceiling** | 1.90 (+0.80) |",
		"| consume | consumers.Consumer | 700k (665k–735k) | events/s | **35%** of franz-go | 1.90 |",
		`raw consume: kafka-go \| Reader`, // pipes escaped
		"| whole pipeline | whole pipeline | 500k (475k–525k) | events/s | **25%** of franz-go |",
		"| 50% of maximum | 250k |",
		"**498 bytes per user**",
		"figures are noisy",
		"- **MISS** whole pipeline throughput: measured 25%",
		"- **MISS** event-to-recommendation latency",
		"| 300 MiB | 250 MiB | 0.0 | 12% |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Every goal is met") {
		t.Error("markdown says every goal is met when some are missed")
	}
	if r.Passed() {
		t.Error("Passed() with missed goals")
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := sampleReport(1_700_000, 60_000, 300_000, 90)
	r.Goals = evaluateGoals(r, scorerWork{}, nil)
	path := filepath.Join(t.TempDir(), "report.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("report JSON does not decode: %v", err)
	}
	if len(back.Rows) != len(r.Rows) || back.Row("pipeline.max").Ratio != 0.85 || back.Latency[0].P99.Median != 90 ||
		back.Config.Events != r.Config.Events || len(back.Goals) != 4 {
		t.Fatalf("round trip lost data: %+v", back)
	}
	for _, key := range []string{`"p99_ms"`, `"state_bytes_per_user"`, `"against": "consume.franz-go"`, `"load_before"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestWritePlot(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *Report
	}{
		{"full", sampleReport(1_700_000, 60_000, 300_000, 90)},
		{"empty", &Report{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bench.png")
			if err := tc.rep.WritePlot(path); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("plot is not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 500 {
				t.Fatalf("plot is %dx%d, too small for six panels", b.Dx(), b.Dy())
			}
		})
	}
}

func TestSessionWork(t *testing.T) {
	// Batch 1: user a has 3 events, b has 9 (two rounds), c has 1.
	// Batch 2: 300 users of one event each (two runs of at most 256).
	var evs1 []string
	for range 3 {
		evs1 = append(evs1, "a")
	}
	for range 9 {
		evs1 = append(evs1, "b")
	}
	evs1 = append(evs1, "c")
	var evs2 []string
	for i := range 300 {
		evs2 = append(evs2, fmt.Sprintf("u%d", i))
	}
	batches := []*schemas.EventBatch{eventBatch(evs1), eventBatch(evs2)}
	defer batches[0].Release()
	defer batches[1].Release()
	w := sessionWork(batches, 8, 256)
	// Rows: batch 1 has a:1 + b:2 + c:1 = 4; batch 2 has 300.
	// Runs: batch 1 round 0 (3 users) + round 1 (1 user) = 2; batch 2 = 2.
	if w.rows != 304 || w.runs != 4 || w.batchUsers != 256 {
		t.Fatalf("sessionWork = %+v, want 304 rows in 4 runs", w)
	}
}

// eventBatch builds a batch with one event per entry of users.
func eventBatch(users []string) *schemas.EventBatch {
	b := schemas.NewEventBuilder(nil)
	defer b.Release()
	for i, u := range users {
		ev := schemas.Event{EventID: []byte(fmt.Sprint(i)), UserID: []byte(u), ItemID: []byte("i1"), TsMs: int64(i)}
		b.Append(&ev, 0, int64(i), int64(i))
	}
	return &schemas.EventBatch{Events: b.NewRecord(), Records: len(users)}
}
