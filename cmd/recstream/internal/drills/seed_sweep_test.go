package drills

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestParseSeeds(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint64
		wantErr string
	}{
		{"7", []uint64{7}, ""},
		{"1-5", []uint64{1, 2, 3, 4, 5}, ""},
		{"3, 9,11-12,9", []uint64{3, 9, 11, 12}, ""},
		{"", nil, "no seed"},
		{"5-2", nil, "not a range"},
		{"x", nil, "not a seed"},
		{"1-5000", nil, "more than 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSeeds(tt.in)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ParseSeeds(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || !slices.Equal(got, tt.want)):
				t.Fatalf("ParseSeeds(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestSweepFindsTheWorstRun: a sweep passes only when every run passed, and
// names each scenario's worst run by lost records, then differing users.
func TestSweepFindsTheWorstRun(t *testing.T) {
	run := func(seed uint64, lost, differing int, rto float64) *Report {
		s := ScenarioResult{Name: ScenarioKill9, Lost: lost, Differing: differing, RTOSeconds: rto, Passed: lost == 0 && differing == 0}
		rep := &Report{Settings: Settings{Seed: seed}, Scenarios: []ScenarioResult{s}, Passed: s.Passed}
		if !s.Passed {
			rep.Broken = []string{"kill9: broken"}
		}
		return rep
	}
	sw := &Sweep{}
	for _, rep := range []*Report{run(1, 0, 0, 6.1), run(2, 0, 12, 6.0), run(3, 4, 1, 6.3), run(4, 0, 0, 9.0)} {
		sw.add(rep)
	}
	if sw.Passed || len(sw.Broken) != 2 || !strings.HasPrefix(sw.Broken[0], "seed 2: ") {
		t.Fatalf("passed %v, broken %v: want two broken runs, seeds 2 and 3", sw.Passed, sw.Broken)
	}
	w := sw.Worst[0]
	if w.Seed != 3 || w.Lost != 4 || w.Runs != 4 || w.Held != 2 || w.MaxRTOSeconds != 9.0 {
		t.Fatalf("worst run %+v, want seed 3 (4 lost) of 4 runs, 2 held, RTO max 9 s", w)
	}
	if rep := sw.WorstReport(); rep.Settings.Seed != 3 {
		t.Fatalf("WorstReport is seed %d, want 3", rep.Settings.Seed)
	}
	var b bytes.Buffer
	if err := sw.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "**BROKEN** in 2 of 4") {
		t.Fatalf("markdown does not show the broken runs:\n%s", b.String())
	}

	clean := &Sweep{}
	clean.add(run(1, 0, 0, 6))
	clean.add(run(2, 0, 0, 7))
	if !clean.Passed || clean.Worst[0].Held != 2 || clean.Worst[0].Seed != 2 {
		t.Fatalf("clean sweep: passed %v, worst %+v", clean.Passed, clean.Worst[0])
	}
}
