package state

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Snapshot is the scorer's state at a batch boundary and the input offsets
// it reflects.
type Snapshot struct {
	Topic        string
	Offsets      map[int32]int64
	ModelVersion string
	// Dim is the width of state vectors (0 for a sequence model's store);
	// HistoryLen the length of item histories (0 for a stateful model's).
	Dim        int
	HistoryLen int
	// Users are the saved users, least recently refreshed first (the order
	// Store.Each gives and Put restores).
	Users []UserState
	// Extras are named files of state kept beside the users' (the
	// scorer's retrieval stage writes one per partition): saved in the
	// generation with their checksums, and given back as they were. A
	// name is a plain file name, not one of the store's own.
	Extras map[string][]byte
	// ranks holds each user's saved recency rank while partitions load.
	ranks []int64
}

// Capture copies the state of store (call it between batches, never while
// the scorer runs).
func Capture(store *Store, topic, modelVersion string, offsets map[int32]int64) *Snapshot {
	snap := &Snapshot{
		Topic: topic, ModelVersion: modelVersion, Dim: store.Dim(), HistoryLen: store.HistoryLen(),
		Offsets: make(map[int32]int64, len(offsets)),
		Users:   make([]UserState, 0, store.Len()),
	}
	for p, o := range offsets {
		snap.Offsets[p] = o
	}
	store.Each(func(u UserState) bool {
		// Each may reuse its slices; keep copies.
		u.State = slices.Clone(u.State)
		u.Bought = slices.Clone(u.Bought)
		u.History = slices.Clone(u.History)
		snap.Users = append(snap.Users, u)
		return true
	})
	return snap
}

// Restore puts every saved user into store, keeping their recency order.
func (s *Snapshot) Restore(store *Store) error {
	if s.Dim != store.Dim() || s.HistoryLen != store.HistoryLen() {
		return fmt.Errorf("checkpoint holds states of %d dimensions and histories of %d items, the model wants %d and %d",
			s.Dim, s.HistoryLen, store.Dim(), store.HistoryLen())
	}
	for _, u := range s.Users {
		if err := store.Put(u); err != nil {
			return fmt.Errorf("restore user %s: %w", u.UserID, err)
		}
	}
	return nil
}

func (s *Snapshot) partitions() []int32 {
	seen := map[int32]bool{}
	for p := range s.Offsets {
		seen[p] = true
	}
	for _, u := range s.Users {
		seen[u.Partition] = true
	}
	out := make([]int32, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// stateSchema is the Arrow schema of a partition file. rank keeps the
// users' recency order across partitions.
var stateSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "rank", Type: arrow.PrimitiveTypes.Int64},
	{Name: "state", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	{Name: "newest_ts_ms", Type: arrow.PrimitiveTypes.Int64},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "bought", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	{Name: "history", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
}, nil)

// writePartition writes the users of partition part as an Arrow IPC file.
func writePartition(w io.Writer, s *Snapshot, part int32) (int, error) {
	schema := stateSchema
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	ids := b.Field(0).(*array.StringBuilder)
	ranks := b.Field(1).(*array.Int64Builder)
	states := b.Field(2).(*array.ListBuilder)
	stateValues := states.ValueBuilder().(*array.Float32Builder)
	ts := b.Field(3).(*array.Int64Builder)
	parts := b.Field(4).(*array.Int32Builder)
	offs := b.Field(5).(*array.Int64Builder)
	bought := b.Field(6).(*array.ListBuilder)
	boughtValues := bought.ValueBuilder().(*array.Int32Builder)
	history := b.Field(7).(*array.ListBuilder)
	historyValues := history.ValueBuilder().(*array.Int32Builder)
	n := 0
	for rank, u := range s.Users {
		if u.Partition != part {
			continue
		}
		if len(u.State) != s.Dim {
			return 0, fmt.Errorf("user %s has %d state values, want %d", u.UserID, len(u.State), s.Dim)
		}
		ids.Append(u.UserID)
		ranks.Append(int64(rank))
		states.Append(true)
		stateValues.AppendValues(u.State, nil)
		ts.Append(u.NewestTsMs)
		parts.Append(u.Partition)
		offs.Append(u.Offset)
		bought.Append(true)
		boughtValues.AppendValues(u.Bought, nil)
		history.Append(true)
		historyValues.AppendValues(u.History, nil)
		n++
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(schema))
	if err != nil {
		return 0, err
	}
	if err := fw.Write(rec); err != nil {
		return 0, err
	}
	return n, fw.Close()
}

// readPartition decodes one partition file and merges its users into s in
// their saved recency order.
func readPartition(data []byte, s *Snapshot) error {
	fr, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer fr.Close()
	if got, want := fr.Schema(), stateSchema; !got.Equal(want) {
		return fmt.Errorf("schema %s, want %s", got, want)
	}
	type ranked struct {
		rank int64
		u    UserState
	}
	var users []ranked
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.RecordBatch(i)
		if err != nil {
			return err
		}
		ids := rec.Column(0).(*array.String)
		ranks := rec.Column(1).(*array.Int64)
		states := rec.Column(2).(*array.List)
		stateValues := states.ListValues().(*array.Float32).Float32Values()
		ts := rec.Column(3).(*array.Int64)
		parts := rec.Column(4).(*array.Int32)
		offs := rec.Column(5).(*array.Int64)
		bought := rec.Column(6).(*array.List)
		boughtValues := bought.ListValues().(*array.Int32).Int32Values()
		history := rec.Column(7).(*array.List)
		historyValues := history.ListValues().(*array.Int32).Int32Values()
		for r := 0; r < int(rec.NumRows()); r++ {
			bs, be := bought.ValueOffsets(r)
			ss, se := states.ValueOffsets(r)
			hs, he := history.ValueOffsets(r)
			users = append(users, ranked{rank: ranks.Value(r), u: UserState{
				UserID:     ids.Value(r),
				State:      nilIfEmpty(slices.Clone(stateValues[ss:se])),
				NewestTsMs: ts.Value(r),
				Partition:  parts.Value(r),
				Offset:     offs.Value(r),
				Bought:     slices.Clone(boughtValues[bs:be]),
				History:    nilIfEmpty(slices.Clone(historyValues[hs:he])),
			}})
		}
	}
	// Merge by rank so that Restore keeps the global recency order.
	merged := make([]ranked, 0, len(s.Users)+len(users))
	for i, u := range s.Users {
		merged = append(merged, ranked{rank: s.ranks[i], u: u})
	}
	merged = append(merged, users...)
	slices.SortStableFunc(merged, func(a, b ranked) int {
		switch {
		case a.rank < b.rank:
			return -1
		case a.rank > b.rank:
			return 1
		}
		return 0
	})
	s.Users = s.Users[:0]
	s.ranks = s.ranks[:0]
	for _, r := range merged {
		s.Users = append(s.Users, r.u)
		s.ranks = append(s.ranks, r.rank)
	}
	return nil
}

// nilIfEmpty keeps absent vectors absent (a state in a history store, a
// history in a state store), as Store.Put expects.
func nilIfEmpty[T any](v []T) []T {
	if len(v) == 0 {
		return nil
	}
	return v
}
