package benchmark

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestMeasureInTurnsRotatesTheOrder(t *testing.T) {
	var lines []string
	r := &run{cfg: Config{Repeats: 3}, report: &Report{}, env: Env{Progress: func(l string) { lines = append(lines, l) }}}
	var order []string
	mk := func(id string, v float64) contender {
		return contender{
			row: Row{ID: id, Name: id, Unit: "x/s"},
			run: func(_ context.Context, rep int) (float64, coreUse, error) {
				order = append(order, id)
				return v * float64(rep+1), coreUse{self: 1, clickhouse: 0.5, others: 0.25}, nil
			},
		}
	}
	cores, err := r.measureInTurns(context.Background(), []contender{mk("a", 1), mk("b", 10), mk("c", 100)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "abcbcacab" {
		t.Fatalf("order %q, want each repeat to start one further along (abc bca cab)", got)
	}
	if len(r.report.Rows) != 3 || r.report.Rows[1].ID != "b" {
		t.Fatalf("rows %+v, want a, b, c in the order given", r.report.Rows)
	}
	b := r.report.Rows[1]
	if b.Value.Median != 20 || b.Value.Min != 10 || b.Value.Max != 30 {
		t.Fatalf("b = %+v, want median 20 of 10, 20, 30", b.Value)
	}
	if b.Cores.Median != 1.5 || b.OtherCores.Median != 0.25 || len(cores) != 3 || cores[1].self[0] != 1 {
		t.Fatalf("cores of b: %+v / %+v, samples %+v", b.Cores, b.OtherCores, cores)
	}
	if len(lines) != 9 || !strings.Contains(lines[0], "a: repeat 1/3: 1 x/s") {
		t.Fatalf("progress lines %q", lines)
	}
}

func TestMeasureInTurnsStopsAtAnError(t *testing.T) {
	r := &run{cfg: Config{Repeats: 2}, report: &Report{}}
	boom := errors.New("boom")
	_, err := r.measureInTurns(context.Background(), []contender{
		{row: Row{ID: "ok", Name: "ok"}, run: func(context.Context, int) (float64, coreUse, error) { return 1, coreUse{}, nil }},
		{row: Row{ID: "bad", Name: "bad one"}, run: func(context.Context, int) (float64, coreUse, error) { return 0, coreUse{}, boom }},
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad one") {
		t.Fatalf("err = %v, want boom naming the contender", err)
	}
	if len(r.report.Rows) != 0 {
		t.Fatalf("rows added after a failure: %+v", r.report.Rows)
	}
}
