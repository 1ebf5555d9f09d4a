package benchmark

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// WriteMarkdown writes the report as Markdown: the machine and data set,
// a table of every stage's throughput beside its ceiling, the latency under
// live load, memory, and the goals with PASS or MISS.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m, c, d := r.Machine, r.Config, r.Data
	fmt.Fprintf(&b, "## recstream bench, %s\n\n", r.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, %s; ONNX Runtime %s (scorer on %s); ClickHouse %s. Load average %.1f at the start, %.1f at the end",
		m.CPUs, m.OS, m.GoVersion, orNA(m.ONNXRuntime), orNA(m.Device), orNA(m.ClickHouse), m.LoadBefore, m.LoadAfter)
	if m.CPUs > 0 && max(m.LoadBefore, m.LoadAfter) > float64(m.CPUs) {
		b.WriteString(" (the machine was busy with other work: figures are noisy)")
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "Data: %d records (%d valid, the rest malformed), %.1f MB, %d partitions; %d users, %d items, D=%d. "+
		"The scorer scores all %d batches; the sinks write the first %d of them (%d records, %d recommendations). "+
		"Every figure is the median of %d repeats, (min–max) beside it. The run took %.0f s.\n\n",
		d.Records, d.ValidEvents, float64(d.Bytes)/1e6, c.Partitions, c.Users, c.Items, c.Dim,
		d.EventBatches, min(c.SinkBatches, d.EventBatches), d.SinkRecords, d.SinkRecommendations, c.Repeats, r.Seconds)

	b.WriteString("### Throughput, each stage against its ceiling\n\n")
	b.WriteString("| stage | what | median (min–max) | unit | against the ceiling | cores busy (others) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, row := range r.Rows {
		vs := ""
		switch {
		case row.Best:
			vs = "**ceiling**"
		case row.Ceiling:
			vs = "ceiling candidate"
		case row.Against != "":
			if c := r.Row(row.Against); c != nil {
				vs = fmt.Sprintf("**%.0f%%** of %s", row.Ratio*100, shortName(c.Name))
			}
		default:
			vs = "reference"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", row.Stage, cell(row.Name), row.Value, row.Unit, cell(vs), coresCell(row))
	}
	b.WriteString("\n")

	if len(r.Latency) > 0 {
		b.WriteString("### Event-to-recommendation latency, live load (log time to both sinks' acknowledgement)\n\n")
		b.WriteString("| load | target events/s | produced events/s | p50 ms | p95 ms | p99 ms | max ms | records per batch | score ms per batch | write ms per batch | cores busy (others) |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, l := range r.Latency {
			fmt.Fprintf(&b, "| %.0f%% of maximum | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.Load*100, human(l.Rate), l.Achieved,
				l.P50, l.P95, l.P99, l.Max, human(l.BatchRecords.Median), human(l.BatchScoreMs.Median), human(l.BatchWriteMs.Median),
				coresCell(Row{Cores: l.Cores, OtherCores: l.OtherCores}))
		}
		b.WriteString("\n")
	}
	if bd := r.Breakdown; bd.BusySeconds > 0 {
		fmt.Fprintf(&b, "At maximum throughput the pipeline was busy %.1f s over %.0f batches (%.0f records each): a batch was in the scorer %.0f%% of that time and in the sinks %.0f%%",
			bd.BusySeconds, bd.Batches, bd.RecordsPerBatch, bd.ScoreShare*100, bd.WriteShare*100)
		for _, name := range slices.Sorted(maps.Keys(bd.SinkShare)) {
			fmt.Fprintf(&b, " (%s %.0f%%)", name, bd.SinkShare[name]*100)
		}
		b.WriteString("; scoring and writing overlap.\n\n")
	}

	b.WriteString("### Memory and machine\n\n")
	if res := r.Resources; res.StateUsers > 0 {
		fmt.Fprintf(&b, "Scorer state: **%.0f bytes per user** (D=%d float32 values, up to 32 bought items, bookkeeping, id and map entry; %d users stored).\n\n",
			res.StateBytesPerUser, res.StateDim, res.StateUsers)
	}
	if len(r.Resources.Stages) > 0 {
		b.WriteString("| step | peak RSS of the bench process (includes the in-process broker) | ClickHouse server RSS at the end | machine load average at the end | I/O pressure (time some task waited on disk) |\n| --- | --- | --- | --- | --- |\n")
		for _, s := range r.Resources.Stages {
			io := "n/a"
			if s.IOPressure >= 0 {
				io = fmt.Sprintf("%.0f%%", s.IOPressure*100)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %s |\n", cell(s.Stage), mib(s.PeakRSSBytes), mib(s.ClickHouseRSSBytes), s.LoadAverage, io)
		}
		b.WriteString("\n")
	}

	if len(r.Goals) > 0 {
		b.WriteString("### Goals\n\n| goal | target | measured | result | what limits it |\n| --- | --- | --- | --- | --- |\n")
		for _, g := range r.Goals {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(g.Name), cell(g.Target), cell(g.Measured), verdict(g.Pass), cell(g.Limit))
		}
		b.WriteString("\n")
		for _, g := range r.Goals {
			if !g.Pass {
				fmt.Fprintf(&b, "- **MISS** %s: measured %s; the goal is %s. What limits it: %s.\n", g.Name, g.Measured, g.Target, g.Limit)
			}
		}
		if r.Passed() {
			b.WriteString("Every goal is met.\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdownFile writes the Markdown report to path.
func (r *Report) WriteMarkdownFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write markdown report: %w", err)
	}
	if err := r.WriteMarkdown(f); err != nil {
		f.Close()
		return fmt.Errorf("write markdown report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write markdown report %s: %w", path, err)
	}
	return nil
}

// Passed reports whether every goal is met.
func (r *Report) Passed() bool {
	for _, g := range r.Goals {
		if !g.Pass {
			return false
		}
	}
	return len(r.Goals) > 0
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "**MISS**"
}

// shortName drops the "raw produce: " style prefix of a ceiling's name.
func shortName(name string) string {
	if _, rest, ok := strings.Cut(name, ": "); ok {
		return rest
	}
	return name
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// coresCell prints the cores a row kept busy and, when the machine was
// shared, those other processes kept busy meanwhile.
func coresCell(row Row) string {
	if !row.Cores.Valid() {
		return ""
	}
	s := fmt.Sprintf("%.2f", row.Cores.Median)
	if o := row.OtherCores; o.Valid() && o.Median >= 0.05 {
		s += fmt.Sprintf(" (+%.2f)", o.Median)
	}
	return s
}

func mib(v float64) string {
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", v/(1<<20))
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
