package benchmark

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotPanel is one stage drawn against its ceiling.
type plotPanel struct {
	title   string
	stage   string // row ID of the stage
	ceiling string // row ID of its ceiling, "" for the stage's Against
}

// plotPanels are the stages drawn, in data-flow order.
var plotPanels = []plotPanel{
	{title: "consume + decode + Arrow", stage: "consume.consumer"},
	{title: "scorer", stage: "score.scorer"},
	{title: "ClickHouse sink", stage: "clickhouse.sink"},
	{title: "Kafka output sink", stage: "kafka-output.sink"},
	{title: "whole pipeline", stage: "pipeline.max"},
}

// WritePlot draws the report into a PNG at path: one panel per stage with
// its throughput beside its ceiling (bars at the median, whiskers from min
// to max), and one of the latency percentiles at 50% and 100% load against
// the goal.
func (r *Report) WritePlot(path string) error {
	plots := make([]*plot.Plot, 0, len(plotPanels)+1)
	for _, pp := range plotPanels {
		p, err := r.stagePlot(pp)
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	lat, err := r.latencyPlot()
	if err != nil {
		return err
	}
	plots = append(plots, lat)

	const cols = 3
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	img := vgimg.New(15*vg.Inch, vg.Length(rows)*4.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(grid, tiles, dc)
	for i, row := range grid {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return nil
}

// stagePlot draws a stage's median beside its ceiling's.
func (r *Report) stagePlot(pp plotPanel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pp.title
	p.Y.Min = 0
	row := r.Row(pp.stage)
	if row == nil || !row.Value.Valid() {
		p.Title.Text += " (not measured)"
		return p, nil
	}
	ceilingID := pp.ceiling
	if ceilingID == "" {
		ceilingID = row.Against
	}
	figs := []Figure{row.Value}
	names := []string{"recstream"}
	if c := r.Row(ceilingID); c != nil && c.Value.Valid() {
		figs = append(figs, c.Value)
		names = append(names, "ceiling:\n"+shortName(c.Name))
		p.Title.Text += fmt.Sprintf(": %.0f%% of ceiling", row.Ratio*100)
	}
	p.Y.Label.Text = row.Unit
	p.Y.Tick.Marker = humanTicks{}
	vals := make(plotter.Values, len(figs))
	whiskers := rangeBars{XYs: make(plotter.XYs, len(figs)), YErrors: make(plotter.YErrors, len(figs))}
	for i, f := range figs {
		vals[i] = f.Median
		whiskers.XYs[i] = plotter.XY{X: float64(i), Y: f.Median}
		whiskers.YErrors[i] = struct{ Low, High float64 }{Low: f.Median - f.Min, High: f.Max - f.Median}
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(60))
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", pp.title, err)
	}
	bars.Color = plotutil.Color(0)
	bars.LineStyle.Width = 0
	if len(figs) > 1 {
		// Colour the ceiling's bar apart: a second chart over the first.
		cb, err := plotter.NewBarChart(plotter.Values{0, figs[1].Median}, vg.Points(60))
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", pp.title, err)
		}
		cb.Color = color.Gray{Y: 160}
		cb.LineStyle.Width = 0
		p.Add(bars, cb)
	} else {
		p.Add(bars)
	}
	errs, err := plotter.NewYErrorBars(whiskers)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", pp.title, err)
	}
	p.Add(errs)
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(8)
	return p, nil
}

// latencyPlot draws p50, p95 and p99 at each load, with the goal as a line.
func (r *Report) latencyPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "event→recommendation latency"
	p.Y.Label.Text = "ms"
	p.Y.Min = 0
	if len(r.Latency) == 0 {
		p.Title.Text += " (not measured)"
		return p, nil
	}
	width := vg.Points(28)
	n := len(r.Latency)
	top := GoalP99Ms
	for i, l := range r.Latency {
		vals := plotter.Values{l.P50.Median, l.P95.Median, l.P99.Median}
		top = max(top, l.P99.Max)
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, fmt.Errorf("plot latency: %w", err)
		}
		bars.Color = plotutil.Color(i + 1)
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(bars)
		p.Legend.Add(fmt.Sprintf("%.0f%% load (%s events/s)", l.Load*100, human(l.Rate)), bars)
	}
	goal, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: GoalP99Ms}, {X: 2.5, Y: GoalP99Ms}})
	if err != nil {
		return nil, fmt.Errorf("plot latency goal: %w", err)
	}
	goal.Color = color.RGBA{R: 200, A: 255}
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add(fmt.Sprintf("goal: p99 <= %.0f ms at 50%%", GoalP99Ms), goal)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Max = top * 1.5 // room for the legend
	p.Y.Tick.Marker = humanTicks{}
	p.NominalX("p50", "p95", "p99")
	return p, nil
}

// rangeBars are the whiskers of a bar chart: from min to max around the
// median.
type rangeBars struct {
	plotter.XYs
	plotter.YErrors
}

// humanTicks labels an axis with k/M suffixes.
type humanTicks struct{}

func (humanTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = human(ticks[i].Value)
		}
	}
	return ticks
}
