package evaluation

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteBarChart draws HR, NDCG and MRR at K of every recommender as
// grouped bars (one group per metric, one colour per recommender) into
// path; the extension picks the format (.png, .svg, .pdf).
func WriteBarChart(path string, rep *Report) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Prequential metrics at %d (%d events scored)", rep.K, rep.Scored)
	p.Y.Label.Text = "score"
	p.Y.Min = 0
	n := len(rep.Results)
	// Groups are one x unit apart, about 160 points at this size: keep a
	// group's bars within 120 of them.
	width := vg.Points(min(30, 120/float64(max(1, n))))
	top := 0.0
	for i, r := range rep.Results {
		bars, err := plotter.NewBarChart(plotter.Values{r.HR, r.NDCG, r.MRR}, width)
		if err != nil {
			return fmt.Errorf("plot %s: %w", r.Name, err)
		}
		bars.Color = seriesColor(i)
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(bars)
		p.Legend.Add(r.Name, bars)
		top = max(top, r.HR, r.NDCG, r.MRR)
	}
	p.Legend.Top = true
	// Room above the bars for the legend, one line per recommender.
	p.Y.Max = top * (1.15 + 0.07*float64(n))
	p.NominalX(fmt.Sprintf("HR@%d", rep.K), fmt.Sprintf("NDCG@%d", rep.K), fmt.Sprintf("MRR@%d", rep.K))
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}

// WriteTimeChart draws each recommender's HR at K per time span of the
// scored part (Result.Series) into path.
func WriteTimeChart(path string, rep *Report) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("HR@%d over time", rep.K)
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = fmt.Sprintf("HR@%d", rep.K)
	p.Y.Min = 0
	p.X.Tick.Marker = plot.TimeTicks{Format: timeFormat(rep.EvalToMs - rep.EvalFromMs)}
	top := 0.0
	for i, r := range rep.Results {
		pts := make(plotter.XYs, 0, len(r.Series))
		for _, b := range r.Series {
			if b.Scored == 0 {
				continue
			}
			mid := (b.FromMs + b.ToMs) / 2
			pts = append(pts, plotter.XY{X: float64(mid) / 1000, Y: b.HR})
			top = max(top, b.HR)
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", r.Name, err)
		}
		line.Color = seriesColor(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(r.Name, line)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Max = top * (1.15 + 0.07*float64(len(rep.Results)))
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}

// seriesColor returns the colour of the i-th recommender: models first,
// then baselines, each clearly apart from its neighbours.
func seriesColor(i int) color.Color {
	palette := []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, // blue
		{0xd6, 0x27, 0x28, 0xff}, // red
		{0x2c, 0xa0, 0x2c, 0xff}, // green
		{0xff, 0x7f, 0x0e, 0xff}, // orange
		{0x94, 0x67, 0xbd, 0xff}, // purple
		{0x7f, 0x7f, 0x7f, 0xff}, // grey
		{0x8c, 0x56, 0x4b, 0xff}, // brown
		{0x17, 0xbe, 0xcf, 0xff}, // cyan
	}
	return palette[i%len(palette)]
}

// timeFormat picks a tick label format for a span of ms.
func timeFormat(spanMs int64) string {
	switch span := time.Duration(spanMs) * time.Millisecond; {
	case span < 2*24*time.Hour:
		return "01-02 15:04"
	case span < 400*24*time.Hour:
		return "2006-01-02"
	default:
		return "2006-01"
	}
}
