package models

import (
	"math"
	"testing"
)

func TestExp2NegAccuracy(t *testing.T) {
	for _, x := range []float64{0, 1e-9, 0.25, 0.5, 0.999999, 1, 1.5, 3.75, 10, 52.3, 126.9, 149, 1000} {
		got, want := exp2Neg(x), math.Exp2(-x)
		if math.Abs(got-want) > 4e-16*want {
			t.Errorf("exp2Neg(%g) = %.17g, want %.17g", x, got, want)
		}
	}
	if exp2Neg(2000) != 0 {
		t.Error("exp2Neg(2000) should underflow to 0")
	}
	for _, x := range []float64{-30, -6, -1, -1e-3, 0, 1e-3, 1, 6, 30} {
		got, want := ExpDet(x), math.Exp(x)
		// x*log2(e) is rounded once: a relative error of about |x|*1e-16.
		if math.Abs(got-want) > (1e-15+math.Abs(x)*2e-16)*want {
			t.Errorf("ExpDet(%g) = %.17g, want %.17g", x, got, want)
		}
	}
}

func TestDecayFactor(t *testing.T) {
	day := float64(24 * 3600 * 1000)
	for _, tc := range []struct {
		dtMs int64
		want float32
	}{
		{0, 1},
		{int64(day), 0.5},
		{2 * int64(day), 0.25},
		{int64(day) / 2, float32(math.Sqrt(0.5))},
		{200 * int64(day), 0}, // far below float32's range
	} {
		if got := DecayFactor(tc.dtMs, day); got != tc.want {
			t.Errorf("DecayFactor(%d ms) = %g, want %g", tc.dtMs, got, tc.want)
		}
	}
}
