package retrieval

import (
	"bytes"
	"reflect"
	"testing"
)

// TestPartitionStateRoundTripAndDamage: a partition's state reads back as
// written, and a truncated file, trailing bytes, or a user naming an item
// outside the vocabulary are refused.
func TestPartitionStateRoundTripAndDamage(t *testing.T) {
	x := mustIndex(t, IndexConfig{})
	var w Window
	for i, item := range []int32{0, 1, 2, 1} {
		x.Observe(&w, Visit{Item: item, TsMs: 1_700_000_000_000 + int64(i), Weight: 1})
	}
	src := PartitionState{Items: []string{"a", "b", "c"}, Index: x,
		Users: []UserState{{ID: "u1", Window: w, Excluded: []int32{2}}, {ID: "u2"}}}
	data, err := src.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got := PartitionState{Index: mustIndex(t, IndexConfig{})}
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Items, src.Items) || len(got.Users) != 2 || !reflect.DeepEqual(got.Users[0], src.Users[0]) ||
		got.Users[1].ID != "u2" || !bytes.Equal(snapshot(t, got.Index), snapshot(t, x)) {
		t.Fatalf("read back %+v, wrote %+v", got, src)
	}
	for n := range len(data) {
		if err := (&PartitionState{Index: mustIndex(t, IndexConfig{})}).UnmarshalBinary(data[:n]); err == nil {
			t.Fatalf("a file cut to %d of %d bytes was accepted", n, len(data))
		}
	}
	if err := (&PartitionState{Index: mustIndex(t, IndexConfig{})}).UnmarshalBinary(append(data, 0)); err == nil {
		t.Error("a trailing byte was accepted")
	}
	bad := src
	bad.Users = []UserState{{ID: "u3", Excluded: []int32{3}}}
	raw, err := bad.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := (&PartitionState{Index: mustIndex(t, IndexConfig{})}).UnmarshalBinary(raw); err == nil {
		t.Error("a user naming item 3 of a 3-item vocabulary was accepted")
	}
}
