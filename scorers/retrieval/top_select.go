package retrieval

import "slices"

// selectTop reorders s so that its first min(k, len(s)) elements are the
// best by cmp (negative: a before b), sorted, and the rest follow in no
// particular order: a quickselect then a sort of the k, so that ranking a
// few hundred candidates for a top 20 does not sort all of them. cmp must
// be a strict total order (ties broken, e.g. by item index), so the result
// is deterministic.
func selectTop[T any](s []T, k int, cmp func(a, b T) int) {
	if k <= 0 {
		return
	}
	if k < len(s) {
		lo, hi := 0, len(s)-1
		for lo < hi {
			p := partition(s, lo, hi, cmp)
			switch {
			case p == k:
				lo = hi // the k best are s[:k]
			case p < k:
				lo = p + 1
			default:
				hi = p - 1
			}
		}
		s = s[:k]
	}
	slices.SortFunc(s, cmp)
}

// partition puts s[lo:hi+1]'s median-of-three pivot at its final place p,
// with every element before p ordered before it, and returns p.
func partition[T any](s []T, lo, hi int, cmp func(a, b T) int) int {
	mid := lo + (hi-lo)/2
	if cmp(s[mid], s[lo]) < 0 {
		s[mid], s[lo] = s[lo], s[mid]
	}
	if cmp(s[hi], s[lo]) < 0 {
		s[hi], s[lo] = s[lo], s[hi]
	}
	if cmp(s[hi], s[mid]) < 0 {
		s[hi], s[mid] = s[mid], s[hi]
	}
	s[mid], s[hi] = s[hi], s[mid] // pivot at hi
	pivot := s[hi]
	p := lo
	for i := lo; i < hi; i++ {
		if cmp(s[i], pivot) < 0 {
			s[i], s[p] = s[p], s[i]
			p++
		}
	}
	s[p], s[hi] = s[hi], s[p]
	return p
}
