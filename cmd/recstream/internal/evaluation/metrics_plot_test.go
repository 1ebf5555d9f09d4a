package evaluation

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *Report {
	rep := &Report{Dataset: "sample", K: 10, Events: 100, WarmupEvents: 50, EvalFromMs: 1_767_225_600_000, EvalToMs: 1_767_229_200_000, Scored: 40}
	for i, name := range []string{"model:als", "popularity", "cooccurrence"} {
		r := Result{Name: name, Metrics: Metrics{Scored: 40, Hits: 10 + i, HR: 0.25 + 0.01*float64(i), NDCG: 0.12, MRR: 0.08}}
		for b := range 4 {
			r.Series = append(r.Series, Bucket{FromMs: rep.EvalFromMs + int64(b)*900_000, ToMs: rep.EvalFromMs + int64(b+1)*900_000 - 1,
				Metrics: Metrics{Scored: 10, Hits: 2 + b, HR: 0.2 + 0.1*float64(b)}})
		}
		rep.Results = append(rep.Results, r)
	}
	return rep
}

// TestReportOutputs writes the table, the JSON and both plots, and reads
// them back: the PNGs must decode, the JSON must round-trip.
func TestReportOutputs(t *testing.T) {
	rep := sampleReport()
	dir := t.TempDir()
	var table strings.Builder
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HR@10", "NDCG@10", "MRR@10", "model:als", "0.2500", "cooccurrence", "scored 40 events of 50"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	jsonPath := filepath.Join(dir, "report.json")
	if err := WriteJSON(jsonPath, rep); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || back.Result("popularity") == nil || back.Result("popularity").Hits != 11 || len(back.Results[0].Series) != 4 {
		t.Fatalf("JSON round trip: %v, %+v", err, back)
	}
	for name, write := range map[string]func(string, *Report) error{"bars.png": WriteBarChart, "time.png": WriteTimeChart} {
		path := filepath.Join(dir, name)
		if err := write(path, rep); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
			t.Errorf("%s is %v", name, b)
		}
	}
	if err := WriteBarChart(filepath.Join(dir, "no-such-dir", "x.png"), rep); err == nil {
		t.Error("writing into a missing directory did not fail")
	}
}
