package training

import (
	"errors"
	"math"
)

// Small dense linear algebra for the trainers (D is 64 or so): float64
// row-major matrices, each product converted explicitly so that Go never
// fuses a multiply and an add (it may on arm64, ppc64 and s390x), which
// keeps the results bit-identical on every platform.

// dotF64 returns a . b.
func dotF64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += float64(a[i] * b[i])
	}
	return s
}

// axpyF64 sets y += a*x.
func axpyF64(a float64, x, y []float64) {
	for i := range x {
		y[i] += float64(a * x[i])
	}
}

// matVecF64 sets out = g v for the D x D matrix g.
func matVecF64(g, v, out []float64) {
	d := len(v)
	for a := range d {
		out[a] = dotF64(g[a*d:(a+1)*d], v)
	}
}

// choleskyLower overwrites the lower triangle of the symmetric positive
// definite d x d matrix a (row-major; only the lower triangle is read) with
// L such that a = L L^T.
func choleskyLower(a []float64, d int) error {
	for j := range d {
		s := a[j*d+j]
		for k := range j {
			s -= float64(a[j*d+k] * a[j*d+k])
		}
		if !(s > 0) {
			return errors.New("matrix is not positive definite")
		}
		ljj := math.Sqrt(s)
		a[j*d+j] = ljj
		for i := j + 1; i < d; i++ {
			s := a[i*d+j]
			for k := range j {
				s -= float64(a[i*d+k] * a[j*d+k])
			}
			a[i*d+j] = s / ljj
		}
	}
	return nil
}

// forwardSolve sets x = L^-1 b for the lower-triangular L in l.
func forwardSolve(l []float64, d int, b, x []float64) {
	for i := range d {
		s := b[i]
		for k := range i {
			s -= float64(l[i*d+k] * x[k])
		}
		x[i] = s / l[i*d+i]
	}
}

// choleskySolve sets x = (L L^T)^-1 b.
func choleskySolve(l []float64, d int, b, x []float64) {
	forwardSolve(l, d, b, x)
	for i := d - 1; i >= 0; i-- {
		s := x[i]
		for k := i + 1; k < d; k++ {
			s -= float64(l[k*d+i] * x[k])
		}
		x[i] = s / l[i*d+i]
	}
}
