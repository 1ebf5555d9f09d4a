package drills

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report as a drill of two scenarios leaves it, one of
// them broken.
func sampleReport() *Report {
	committed := join(steady(0, 10, 10), flat(100, 20), steady(110, 10, 10), flat(200, 5))
	ok := ScenarioResult{Name: ScenarioKill9, Description: "kills", Produced: 1000, Valid: 990, DeadLettered: 10,
		Compared: 50, AbsorbedTopic: 400, RewritesTopic: 40,
		Samples: series(committed, committed, 0), Faults: []Fault{{Kind: "kill -9", Start: 1.0, End: 1.2}}}
	ok.finish()
	bad := ScenarioResult{Name: ScenarioClickHouseOutage, Description: "outage", Produced: 1000, Valid: 989, DeadLettered: 10, Lost: 1,
		Samples: series(committed, committed, 0), Faults: []Fault{{Kind: "clickhouse down", Start: 1.0, End: 2.0}}}
	bad.breaks("1 input records lost: neither in ClickHouse events FINAL nor dead-lettered")
	bad.finish()
	return &Report{
		Command: "recstream drill --scenarios kill9,clickhouse-outage", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Seconds: 95, Settings: settingsOf(Config{Scenarios: []string{ScenarioKill9, ScenarioClickHouseOutage}}.WithDefaults()),
		Cluster:   ClusterInfo{KafkaBrokers: 3, ReplicationFactor: 3, MinInsyncReplicas: 2, ModelV1: "ut-1"},
		Reference: ScenarioResult{Name: "reference", Produced: 1000, Valid: 990, DeadLettered: 10, Compared: 50, Passed: true},
		Scenarios: []ScenarioResult{ok, bad},
		Broken:    []string{"clickhouse-outage: " + bad.Broken[0]},
	}
}

func TestReportMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"**1 guarantees broken:**",
		"- clickhouse-outage: 1 input records lost",
		"Command: `recstream drill --scenarios kill9,clickhouse-outage`",
		"| kill9 | 1 | 1000 | 0 | 0 of 50 | 0 / 400 | 0 / 40 | 2.0 s | held |",
		"| clickhouse-outage | 1 | 1000 | 1 |",
		"**BROKEN** (1)",
		"## kill9",
		"| 1 | kill -9 | 1.00 s | 1.20 s | 3.00 s | 3.00 s | 2.0 s |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Passed || len(back.Broken) != 1 || len(back.Scenarios) != 2 || back.Scenarios[1].Lost != 1 ||
		back.Scenarios[0].Faults[0].RTOSeconds != rep.Scenarios[0].Faults[0].RTOSeconds || len(back.Scenarios[0].Samples) == 0 {
		t.Fatalf("JSON round trip lost data: %s", b.String()[:400])
	}
	for _, key := range []string{`"rto_seconds"`, `"lost"`, `"differing"`, `"absorbed_topic"`, `"samples"`, `"broken"`} {
		if !bytes.Contains(b.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestWriteTimeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timeline.png")
	if err := WriteTimeline(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("timeline is not a PNG: %v", err)
	}
	// One lane per scenario, stacked.
	if b := img.Bounds(); b.Dy() < 2*b.Dx()/6 || b.Dx() < 500 {
		t.Fatalf("timeline is %dx%d, want two lanes of a wide chart", b.Dx(), b.Dy())
	}
	if err := WriteTimeline(path, &Report{}); err == nil {
		t.Fatal("a report without scenarios drew a timeline")
	}
}

func TestRates(t *testing.T) {
	// 10 records every 0.1 s is 100 records/s.
	pts := rates(series(steady(0, 10, 30), steady(0, 10, 30), 0), func(s Sample) int64 { return s.Output })
	for _, p := range pts[10:] {
		if p.Y < 99.9 || p.Y > 100.1 {
			t.Fatalf("rate at %.1f s = %.2f, want 100", p.X, p.Y)
		}
	}
}
