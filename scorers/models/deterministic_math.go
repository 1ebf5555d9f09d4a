package models

import "math"

// The scorer and the trainer need exponentials whose bits do not depend on
// the machine: math.Exp's amd64 assembly takes a different path on CPUs with
// FMA, and Go may fuse a*b+c into one instruction on arm64, ppc64 and s390x.
// The functions here use only IEEE float64 operations that every platform
// rounds the same way, with explicit conversions that forbid fusion.

// exp2Neg returns 2^-x for x >= 0.
func exp2Neg(x float64) float64 {
	if x >= 1100 { // below float64's smallest subnormal
		return 0
	}
	n := math.Floor(x)
	y := float64((x - n) * math.Ln2) // in [0, ln 2)
	// e^-y by its Taylor series in Horner form; degree 18 leaves a
	// truncation error below 1e-18 on [0, ln 2).
	p := 1.0
	for i := 18; i >= 1; i-- {
		p = float64(1 - float64(y*p)/float64(i))
	}
	return math.Ldexp(p, -int(n))
}

// ExpDet returns e^x, bit for bit the same on every machine: the trainers
// (scorers/training) use it for their sigmoids, so that a seed gives the
// same model everywhere.
func ExpDet(x float64) float64 {
	if x >= 0 {
		if x > 700 {
			return math.Inf(1)
		}
		return 1 / exp2Neg(float64(x*math.Log2E))
	}
	return exp2Neg(float64(-x * math.Log2E))
}

// DecayFactor returns 2^(-dtMs/halfLifeMs) as a float32: the factor a
// user's state is multiplied by when dtMs have passed since their previous
// event.
func DecayFactor(dtMs int64, halfLifeMs float64) float32 {
	return float32(exp2Neg(float64(dtMs) / halfLifeMs))
}
