package drills

import (
	"math"
	"testing"
)

// series builds samples every 0.1 s from 0 with the given committed and
// output counts, and input in the log (0: all of it committed at the end).
func series(committed, output []int64, input int64) []Sample {
	if input == 0 {
		input = committed[len(committed)-1]
	}
	out := make([]Sample, len(committed))
	for i := range out {
		out[i] = Sample{At: float64(i) / 10, Input: input, Committed: committed[i], Output: output[i]}
	}
	return out
}

// steady returns n counts growing by step from start.
func steady(start, step int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out
}

func flat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func join(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestRecoveryTime(t *testing.T) {
	tests := []struct {
		name       string
		committed  []int64
		input      int64 // records in the input log; 0: all committed
		start, end float64
		want       float64 // -1: not recovered
	}{
		{
			// Progress until 1.0 s, a kill at 1.0 s, restart at 1.2 s,
			// nothing until 3.0 s.
			name:      "kill then restart",
			committed: join(steady(0, 10, 10), flat(100, 20), steady(110, 10, 10)),
			start:     1.0, end: 1.2, want: 3.0,
		},
		{
			// The batch in flight commits at 1.1 s, then a 2 s stall.
			name:      "in-flight batch is not a recovery",
			committed: join(steady(0, 10, 11), flat(110, 20), steady(120, 10, 10)),
			start:     1.0, end: 1.0, want: 3.1,
		},
		{
			name:      "no stall: first progress after the fault",
			committed: steady(0, 10, 40),
			start:     1.05, end: 1.05, want: 1.1,
		},
		{
			// A restart from a checkpoint commits offsets below the ones
			// committed before the crash: a change is progress.
			name:      "commit going back counts",
			committed: join(steady(0, 10, 10), flat(100, 20), steady(50, 10, 10)),
			start:     1.0, end: 1.0, want: 3.0,
		},
		{
			name:      "never recovered",
			committed: join(steady(0, 10, 10), flat(100, 30)),
			input:     500,
			start:     1.0, end: 1.0, want: -1,
		},
		{
			// The same quiet end, with the input all committed: a run that
			// finished, not a stall.
			name:      "quiet after the input is done",
			committed: join(steady(0, 10, 12), flat(110, 30)),
			start:     1.05, end: 1.05, want: 1.1,
		},
		{
			// A stall that begins long after the repair is not this fault's
			// doing: the first progress after the fault counts.
			name:      "late stall not attributed",
			committed: join(steady(0, 10, 60), flat(600, 20), steady(610, 10, 5)),
			start:     1.05, end: 1.05, want: 1.1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			samples := series(tt.committed, tt.committed, tt.input)
			at, ok := recoveryTime(samples, tt.start, tt.end, commitsMoved)
			if tt.want < 0 {
				if ok {
					t.Fatalf("recoveryTime = %.2f, want not recovered", at)
				}
				return
			}
			if !ok || math.Abs(at-tt.want) > 1e-9 {
				t.Fatalf("recoveryTime = %.2f, %v; want %.2f", at, ok, tt.want)
			}
		})
	}
}

// TestRecoveryTimeOutputVersusCommits is the case the drill met on a real
// cluster when a broker died: the pipeline retried a batch whose write to
// the output topic failed for some partitions, each retry rewriting the
// records that got through, so the output grew while nothing was
// committed. Output-based recovery comes early; commit-based does not.
func TestRecoveryTimeOutputVersusCommits(t *testing.T) {
	committed := join(steady(0, 10, 10), flat(100, 40), steady(110, 10, 10))
	output := join(steady(0, 10, 10), flat(100, 10), steady(105, 5, 30), steady(260, 10, 10))
	samples := series(committed, output, 0)
	out, ok := recoveryTime(samples, 1.0, 1.0, outputGrew)
	if !ok || math.Abs(out-2.0) > 1e-9 {
		t.Fatalf("output-based recovery = %.2f, %v; want 2.0", out, ok)
	}
	rec, ok := recoveryTime(samples, 1.0, 1.0, commitsMoved)
	if !ok || math.Abs(rec-5.0) > 1e-9 {
		t.Fatalf("commit-based recovery = %.2f, %v; want 5.0", rec, ok)
	}
}

func TestScenarioResultFinish(t *testing.T) {
	committed := join(steady(0, 10, 10), flat(100, 20), steady(110, 10, 10), flat(200, 10))
	r := ScenarioResult{
		Samples: series(committed, committed, 300),
		Faults:  []Fault{{Kind: "a", Start: 1.0, End: 1.2}, {Kind: "b", Start: 4.0, End: 4.0}},
	}
	r.finish()
	if r.Faults[0].RTOSeconds < 1.99 || r.Faults[0].RTOSeconds > 2.01 {
		t.Errorf("fault a RTO = %.2f, want 2.0", r.Faults[0].RTOSeconds)
	}
	if r.Faults[1].Recovered != -1 || r.RTOSeconds != -1 || r.Passed {
		t.Errorf("fault b never recovered: got recovered %.2f, RTO %.2f, passed %v", r.Faults[1].Recovered, r.RTOSeconds, r.Passed)
	}
	if len(r.Broken) != 1 {
		t.Errorf("broken = %v, want one entry for fault b", r.Broken)
	}
}
