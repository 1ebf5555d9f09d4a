package training

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestCholeskySolve checks the factorisation and both solves on random
// symmetric positive definite systems against the matrix they came from.
func TestCholeskySolve(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{1, 2, 7, 64} {
		// a = b b^T + d I is symmetric positive definite.
		b := make([]float64, d*d)
		for i := range b {
			b[i] = r.NormFloat64()
		}
		a := make([]float64, d*d)
		for i := range d {
			for j := range d {
				a[i*d+j] = dotF64(b[i*d:(i+1)*d], b[j*d:(j+1)*d])
			}
			a[i*d+i] += float64(d)
		}
		want := make([]float64, d)
		for i := range want {
			want[i] = r.NormFloat64()
		}
		rhs := make([]float64, d)
		matVecF64(a, want, rhs)
		l := append([]float64(nil), a...)
		if err := choleskyLower(l, d); err != nil {
			t.Fatalf("d=%d: %v", d, err)
		}
		// L L^T must give a back (lower triangle).
		for i := range d {
			for j := 0; j <= i; j++ {
				var s float64
				for k := 0; k <= j; k++ {
					s += l[i*d+k] * l[j*d+k]
				}
				if math.Abs(s-a[i*d+j]) > 1e-9*float64(d) {
					t.Fatalf("d=%d: (L L^T)[%d,%d] = %g, want %g", d, i, j, s, a[i*d+j])
				}
			}
		}
		got := make([]float64, d)
		choleskySolve(l, d, rhs, got)
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-8 {
				t.Fatalf("d=%d: x[%d] = %g, want %g", d, i, got[i], want[i])
			}
		}
	}
	notPD := []float64{1, 2, 2, 1}
	if err := choleskyLower(notPD, 2); err == nil {
		t.Fatal("an indefinite matrix was factorised")
	}
}

// TestDeterministicLog checks logDet and powDet against the math package
// (they exist only to be bit-identical across platforms).
func TestDeterministicLog(t *testing.T) {
	for _, x := range []float64{1, 1.5, 2, math.E, 10, 12345.678, 1e15} {
		if got, want := logDet(x), math.Log(x); math.Abs(got-want) > 1e-14*math.Max(1, want) {
			t.Errorf("logDet(%g) = %.17g, want %.17g", x, got, want)
		}
	}
	for _, tc := range [][2]float64{{2, 0.5}, {0.7, 1}, {math.Log1p(1000), 1}, {3, 2.5}} {
		if got, want := powDet(tc[0], tc[1]), math.Pow(tc[0], tc[1]); math.Abs(got-want) > 1e-12*want {
			t.Errorf("powDet(%g, %g) = %.17g, want %.17g", tc[0], tc[1], got, want)
		}
	}
}
