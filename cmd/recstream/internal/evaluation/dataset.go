package evaluation

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/training"
)

// NoItem is Event.Item of an event without an item (a search).
const NoItem = -1

// Event is one interaction of a Dataset, its ids replaced by indices into
// the Dataset's Users and Items.
type Event struct {
	// User indexes Dataset.Users.
	User int32
	// Item indexes Dataset.Items; NoItem for an event without one.
	Item int32
	// Type indexes Dataset.Types.
	Type uint8
	// TsMs is the event time, Unix milliseconds.
	TsMs int64
}

// Dataset is an event history in time order, as the loaders return it.
type Dataset struct {
	// Users and Items are the distinct ids, in order of first appearance.
	Users, Items []string
	// Types are the event type names; Event.Type indexes them. The loaders
	// use schemas.DefaultEventTypes(), the scorer's default list.
	Types []string
	// Events are sorted by time; events with equal times keep their input
	// order.
	Events []Event
	// Skipped counts input records that could not be read (bad lines,
	// unknown types, missing fields, timestamps out of range); SkippedBy
	// splits it by reason (the decoder's reason codes for the event
	// contract). Source says where the data came from.
	Skipped   int
	SkippedBy map[string]int
	Source    string

	userIndex, itemIndex map[string]int32
}

// newDataset returns an empty dataset of the default event types.
func newDataset(source string) *Dataset {
	return &Dataset{
		Types:     schemas.DefaultEventTypes(),
		Source:    source,
		SkippedBy: map[string]int{},
		userIndex: map[string]int32{},
		itemIndex: map[string]int32{},
	}
}

// add appends an event; item "" means none.
func (d *Dataset) add(user, item string, typ uint8, tsMs int64) {
	u, ok := d.userIndex[user]
	if !ok {
		u = int32(len(d.Users))
		d.userIndex[user] = u
		d.Users = append(d.Users, user)
	}
	it := int32(NoItem)
	if item != "" {
		it, ok = d.itemIndex[item]
		if !ok {
			it = int32(len(d.Items))
			d.itemIndex[item] = it
			d.Items = append(d.Items, item)
		}
	}
	d.Events = append(d.Events, Event{User: u, Item: it, Type: typ, TsMs: tsMs})
}

// skip counts a record that could not be read, and why.
func (d *Dataset) skip(reason string) {
	d.Skipped++
	d.SkippedBy[reason]++
}

// rejectReason is why a parsed CSV row is unusable ("" when it is usable):
// its timestamp did not parse, its type is not one of the dataset's, or an
// id it needs is empty.
func rejectReason(tsErr error, typeKnown, idsPresent bool) string {
	switch {
	case tsErr != nil:
		return "bad_timestamp"
	case !typeKnown:
		return "unknown_type"
	case !idsPresent:
		return "missing_field"
	}
	return ""
}

// finish sorts the events by time, keeping input order among equal times.
func (d *Dataset) finish() {
	slices.SortStableFunc(d.Events, func(a, b Event) int { return cmp.Compare(a.TsMs, b.TsMs) })
}

// ItemIndex returns the index of item id, and whether the dataset has it.
func (d *Dataset) ItemIndex(id string) (int32, bool) {
	i, ok := d.itemIndex[id]
	return i, ok
}

// TypeCode returns the code of the event type name.
func (d *Dataset) TypeCode(name string) (uint8, bool) {
	i := slices.Index(d.Types, name)
	return uint8(i), i >= 0
}

// SplitIndex returns the index of the first event of the last (1-fraction)
// share of the events in time: events before it are the first fraction.
// Events with the time of the boundary all go after it, so that no instant
// is split. fraction is clamped to [0, 1].
func (d *Dataset) SplitIndex(fraction float64) int {
	n := len(d.Events)
	i := min(n, max(0, int(float64(n)*min(1, max(0, fraction)))))
	for i > 0 && i < n && d.Events[i-1].TsMs == d.Events[i].TsMs {
		i--
	}
	return i
}

// Interactions returns events [from, to) as trainer input.
func (d *Dataset) Interactions(from, to int) []training.Interaction {
	out := make([]training.Interaction, 0, to-from)
	for _, e := range d.Events[from:to] {
		in := training.Interaction{User: d.Users[e.User], Type: e.Type, TsMs: e.TsMs}
		if e.Item != NoItem {
			in.Item = d.Items[e.Item]
		}
		out = append(out, in)
	}
	return out
}

// Span returns the event times of events [from, to): first and last.
func (d *Dataset) Span(from, to int) (fromMs, toMs int64) {
	if from >= to {
		return 0, 0
	}
	return d.Events[from].TsMs, d.Events[to-1].TsMs
}

// String describes the dataset in one line.
func (d *Dataset) String() string {
	from, to := d.Span(0, len(d.Events))
	s := fmt.Sprintf("%s: %d events, %d users, %d items, %s to %s (%d records skipped",
		d.Source, len(d.Events), len(d.Users), len(d.Items), formatMs(from), formatMs(to), d.Skipped)
	reasons := slices.Sorted(maps.Keys(d.SkippedBy))
	for i, r := range reasons {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		s += fmt.Sprintf("%s%d %s", sep, d.SkippedBy[r], r)
	}
	return s + ")"
}
