package models

import (
	"errors"
	"fmt"
	"math"
)

// Event-type weights: how much one event of each type moves a user's
// state, in the built-in model and the trainers.

// DefaultTypeWeights returns the weight of each default event type: how
// much one event of that type moves the user's state towards the item.
func DefaultTypeWeights() map[string]float32 {
	return map[string]float32{
		"view":        1,
		"click":       2,
		"add_to_cart": 4,
		"purchase":    8,
		"search":      0.5,
	}
}

// TypeWeightVector returns [T+1] weights: 0 for padding, then the weight of
// each type name in code order.
func TypeWeightVector(types []string, weights map[string]float32) ([]float32, error) {
	if len(types) == 0 {
		return nil, errors.New("event_types: none given")
	}
	v := make([]float32, len(types)+1)
	for i, name := range types {
		w, ok := weights[name]
		if !ok {
			return nil, fmt.Errorf("type_weights: no weight for event type %q", name)
		}
		if err := CheckTypeWeight(name, w); err != nil {
			return nil, err
		}
		v[i+1] = w
	}
	return v, nil
}

// minTypeWeight keeps weight * embedding away from underflow: a product that
// rounds to -0 would break the bit-exact equivalence of a padding step.
const minTypeWeight = 1e-6

// CheckTypeWeight says why w cannot weigh events of type name, or nil.
func CheckTypeWeight(name string, w float32) error {
	if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) || w < 0 || (w > 0 && w < minTypeWeight) || w > 1e6 {
		return fmt.Errorf("type_weights: weight of %q must be 0 or in [%g, 1e6], got %g", name, minTypeWeight, w)
	}
	return nil
}
