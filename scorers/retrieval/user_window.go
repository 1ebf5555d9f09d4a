package retrieval

import "slices"

// Visit is one interaction of a user with an item, as the index learns it.
type Visit struct {
	// Item is the item's dense index (the caller's vocabulary).
	Item int32
	// TsMs is the event time, Unix milliseconds.
	TsMs int64
	// Weight is the event type's weight (a purchase counts more than a
	// view); it must be > 0.
	Weight float32
}

// Window is a user's last distinct items, newest last: what a new visit is
// counted as co-visited with, and what the co-visitation and transition
// sources start from. It is user state: the caller keeps one per user and
// checkpoints it with the rest of the user's state.
type Window struct {
	Visits []Visit
}

// Last returns the newest visit and true, or false for an empty window.
func (w *Window) Last() (Visit, bool) {
	if len(w.Visits) == 0 {
		return Visit{}, false
	}
	return w.Visits[len(w.Visits)-1], true
}

// push makes v the newest visit, keeping at most size distinct items: an
// item already in the window moves to the end with the larger of its two
// weights and v's time.
func (w *Window) push(v Visit, size int) {
	if i := slices.IndexFunc(w.Visits, func(p Visit) bool { return p.Item == v.Item }); i >= 0 {
		v.Weight = max(v.Weight, w.Visits[i].Weight)
		w.Visits = slices.Delete(w.Visits, i, i+1)
	}
	if len(w.Visits) >= size {
		w.Visits = slices.Delete(w.Visits, 0, len(w.Visits)-size+1)
	}
	w.Visits = append(w.Visits, v)
}
