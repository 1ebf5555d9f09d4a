package drills

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours of the timeline.
var (
	outputColor    = color.NRGBA{R: 31, G: 119, B: 180, A: 255}
	committedColor = color.NRGBA{R: 140, G: 140, B: 140, A: 255}
	faultColor     = color.NRGBA{R: 214, G: 39, B: 40, A: 50}
	faultEdgeColor = color.NRGBA{R: 214, G: 39, B: 40, A: 255}
	rtoColor       = color.NRGBA{R: 44, G: 160, B: 44, A: 255}
)

// rateWindow is the span, in seconds, over which records/s are averaged.
const rateWindow = 1.0

// rates turns cumulative counts into per-second rates averaged over
// rateWindow. Points with less than half a window behind them are left out:
// the backlog of the first tenth of a second would otherwise read as a
// spike that flattens everything else.
func rates(samples []Sample, count func(Sample) int64) plotter.XYs {
	var pts plotter.XYs
	j := 0
	for i := 1; i < len(samples); i++ {
		for j < i-1 && samples[i].At-samples[j+1].At >= rateWindow {
			j++
		}
		dt := samples[i].At - samples[j].At
		if dt < rateWindow/2 {
			continue
		}
		r := float64(count(samples[i])-count(samples[j])) / dt
		pts = append(pts, plotter.XY{X: samples[i].At, Y: max(0, r)})
	}
	return pts
}

// WriteTimeline draws the scenarios of rep as lanes, one above the other,
// into a PNG at path: for each, time since the scenario began on x, output
// records/s (blue) and committed input records/s (grey) on y, each fault
// shaded red from injection to repair with a line at its start, and its
// recovery marked by a green bar from the fault to the first output after
// it, labelled with the RTO.
func WriteTimeline(path string, rep *Report) error {
	lanes := rep.Scenarios
	if len(lanes) == 0 {
		return fmt.Errorf("timeline %s: the report has no scenario", path)
	}
	plots := make([][]*plot.Plot, len(lanes))
	for i, s := range lanes {
		p, err := lanePlot(s, i == 0)
		if err != nil {
			return fmt.Errorf("timeline %s: %w", path, err)
		}
		plots[i] = []*plot.Plot{p}
	}
	const laneHeight = 2.2 * vg.Inch
	img := vgimg.New(11*vg.Inch, laneHeight*vg.Length(len(lanes)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(lanes), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(6)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("timeline %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("timeline %s: %w", path, err)
	}
	return nil
}

// lanePlot draws one scenario.
func lanePlot(s ScenarioResult, legend bool) (*plot.Plot, error) {
	p := plot.New()
	verdict := "held"
	if !s.Passed {
		verdict = "BROKEN"
	}
	p.Title.Text = fmt.Sprintf("%s: %d faults, RTO %s, guarantees %s", s.Name, len(s.Faults), seconds(s.RTOSeconds), verdict)
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "seconds since the scenario began"
	p.Y.Label.Text = "records/s"
	p.X.Min, p.Y.Min = 0, 0
	out := rates(s.Samples, func(x Sample) int64 { return x.Output })
	committed := rates(s.Samples, func(x Sample) int64 { return x.Committed })
	ymax := 1.0
	for _, pt := range append(append(plotter.XYs{}, out...), committed...) {
		ymax = max(ymax, pt.Y)
	}
	ymax *= 1.15
	p.Y.Max = ymax
	if n := len(s.Samples); n > 0 {
		p.X.Max = s.Samples[n-1].At
	}

	for _, f := range s.Faults {
		end := max(f.End, f.Start+0.05) // a fault with no repair still shows
		shade, err := plotter.NewPolygon(plotter.XYs{{X: f.Start, Y: 0}, {X: end, Y: 0}, {X: end, Y: ymax}, {X: f.Start, Y: ymax}})
		if err != nil {
			return nil, err
		}
		shade.Color = faultColor
		shade.LineStyle.Width = 0
		p.Add(shade)
		edge, err := plotter.NewLine(plotter.XYs{{X: f.Start, Y: 0}, {X: f.Start, Y: ymax}})
		if err != nil {
			return nil, err
		}
		edge.Color, edge.Width = faultEdgeColor, vg.Points(1)
		p.Add(edge)
	}
	if len(committed) > 0 {
		l, err := plotter.NewLine(committed)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = committedColor, vg.Points(1)
		p.Add(l)
		if legend {
			p.Legend.Add("input committed/s", l)
		}
	}
	if len(out) > 0 {
		l, err := plotter.NewLine(out)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = outputColor, vg.Points(1.2)
		p.Add(l)
		if legend {
			p.Legend.Add("output records/s", l)
		}
	}
	var labels plotter.XYLabels
	var rightAligned []bool
	for i, f := range s.Faults {
		if f.Recovered < 0 {
			continue
		}
		// Bars of successive faults alternate in height so that close
		// ones stay readable.
		y := ymax * (0.92 - 0.1*float64(i%3))
		bar, err := plotter.NewLine(plotter.XYs{{X: f.Start, Y: y}, {X: f.Recovered, Y: y}})
		if err != nil {
			return nil, err
		}
		bar.Color, bar.Width = rtoColor, vg.Points(2.5)
		p.Add(bar)
		// A label near the right edge goes left of the bar's end.
		right := f.Recovered > 0.85*p.X.Max
		text := fmt.Sprintf(" RTO %.1fs", f.RTOSeconds)
		if right {
			text = fmt.Sprintf("RTO %.1fs ", f.RTOSeconds)
		}
		labels.XYs = append(labels.XYs, plotter.XY{X: f.Recovered, Y: y})
		labels.Labels = append(labels.Labels, text)
		rightAligned = append(rightAligned, right)
	}
	if len(labels.XYs) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Color = rtoColor
			l.TextStyle[i].Font.Size = vg.Points(7)
			l.TextStyle[i].YAlign = draw.YBottom
			if rightAligned[i] {
				l.TextStyle[i].XAlign = draw.XRight
			}
		}
		p.Add(l)
	}
	if legend {
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.TextStyle.Font.Size = vg.Points(8)
	}
	return p, nil
}
