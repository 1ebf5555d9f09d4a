package benchmark

import (
	"math"
	"testing"
)

func TestNewFigure(t *testing.T) {
	tests := []struct {
		name                       string
		samples                    []float64
		wantMedian, wantLo, wantHi float64
		wantN                      int
	}{
		{"odd", []float64{3, 1, 2}, 2, 1, 3, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4, 4},
		{"one", []float64{7}, 7, 7, 7, 1},
		{"NaN dropped", []float64{math.NaN(), 5, 1}, 3, 1, 5, 2},
		{"none", nil, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFigure(tt.samples)
			if f.Median != tt.wantMedian || f.Min != tt.wantLo || f.Max != tt.wantHi || len(f.Samples) != tt.wantN {
				t.Fatalf("NewFigure(%v) = %+v, want median %v, min %v, max %v, %d samples",
					tt.samples, f, tt.wantMedian, tt.wantLo, tt.wantHi, tt.wantN)
			}
			if f.Valid() != (tt.wantN > 0) {
				t.Fatalf("Valid() = %v with %d samples", f.Valid(), tt.wantN)
			}
		})
	}
	// The samples keep their measured order.
	if f := NewFigure([]float64{3, 1, 2}); f.Samples[0] != 3 || f.Samples[2] != 2 {
		t.Fatalf("samples reordered: %v", f.Samples)
	}
}

func TestFigureString(t *testing.T) {
	tests := []struct {
		f    Figure
		want string
	}{
		{NewFigure([]float64{412_345, 398_000, 430_100}), "412k (398k–430k)"},
		{NewFigure([]float64{2_270_000}), "2.27M"},
		{NewFigure([]float64{91, 85, 120}), "91 (85–120)"},
		{NewFigure([]float64{3.14159}), "3.14"},
		{NewFigure([]float64{12.34}), "12.3"},
		{Figure{}, "n/a"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%v.String() = %q, want %q", tt.f.Samples, got, tt.want)
		}
	}
}

func TestFigureScale(t *testing.T) {
	f := NewFigure([]float64{1, 2, 3}).Scale(1000)
	if f.Median != 2000 || f.Min != 1000 || f.Max != 3000 || f.Samples[2] != 3000 {
		t.Fatalf("Scale(1000) = %+v", f)
	}
	if g := NewFigure([]float64{1, 2, 3}).Scale(-1); g.Min != -3 || g.Max != -1 {
		t.Fatalf("Scale(-1) = %+v, want min -3 and max -1", g)
	}
}

func TestMeasureStopsAtTheFirstError(t *testing.T) {
	calls := 0
	var seen []int
	f, err := measure(5, func(rep int) (float64, error) {
		calls++
		if rep == 2 {
			return 0, errTest
		}
		return float64(rep + 1), nil
	}, func(rep int, _ float64) { seen = append(seen, rep) })
	if err != errTest || calls != 3 {
		t.Fatalf("measure: err %v after %d calls, want errTest after 3", err, calls)
	}
	if len(f.Samples) != 2 || len(seen) != 2 {
		t.Fatalf("measure kept %v and reported %v, want the two good repeats", f.Samples, seen)
	}
}

var errTest = errorString("test error")

type errorString string

func (e errorString) Error() string { return string(e) }
