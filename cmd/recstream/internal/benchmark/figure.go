package benchmark

import (
	"fmt"
	"math"
	"slices"
)

// Figure is one measured quantity over the repeats of a run: its median
// with the smallest and largest sample beside it. The zero Figure has no
// samples and prints as "n/a".
type Figure struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// NewFigure summarises samples (in the order measured). NaN samples (a
// repeat that measured nothing) are dropped.
func NewFigure(samples []float64) Figure {
	kept := make([]float64, 0, len(samples))
	for _, s := range samples {
		if !math.IsNaN(s) {
			kept = append(kept, s)
		}
	}
	f := Figure{Samples: kept}
	if len(kept) == 0 {
		return f
	}
	sorted := slices.Clone(kept)
	slices.Sort(sorted)
	f.Min, f.Max = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		f.Median = sorted[n/2]
	} else {
		f.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return f
}

// Valid reports whether the figure has at least one sample.
func (f Figure) Valid() bool { return len(f.Samples) > 0 }

// Scale returns the figure with every value multiplied by k (for unit
// changes).
func (f Figure) Scale(k float64) Figure {
	out := Figure{Median: f.Median * k, Min: f.Min * k, Max: f.Max * k, Samples: make([]float64, len(f.Samples))}
	for i, s := range f.Samples {
		out.Samples[i] = s * k
	}
	if k < 0 {
		out.Min, out.Max = out.Max, out.Min
	}
	return out
}

// String prints the median with the range: "412k (398k–430k)".
func (f Figure) String() string {
	if !f.Valid() {
		return "n/a"
	}
	if len(f.Samples) == 1 {
		return human(f.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", human(f.Median), human(f.Min), human(f.Max))
}

// human prints v with three significant digits and a k/M/G suffix.
func human(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1e9:
		return sig3(v/1e9) + "G"
	case abs >= 1e6:
		return sig3(v/1e6) + "M"
	case abs >= 1e4:
		return sig3(v/1e3) + "k"
	case abs >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case abs >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// sig3 prints v (1 <= |v| < 1000) with three significant digits.
func sig3(v float64) string {
	switch abs := math.Abs(v); {
	case abs >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case abs >= 9.995:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// measure runs fn repeats times and summarises what it returns. progress,
// if set, is told each sample.
func measure(repeats int, fn func(rep int) (float64, error), progress func(rep int, v float64)) (Figure, error) {
	samples := make([]float64, 0, repeats)
	for rep := range repeats {
		v, err := fn(rep)
		if err != nil {
			return NewFigure(samples), err
		}
		samples = append(samples, v)
		if progress != nil {
			progress(rep, v)
		}
	}
	return NewFigure(samples), nil
}
