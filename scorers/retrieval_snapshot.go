package scorers

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/recstream/recstream/scorers/retrieval"
	"github.com/recstream/recstream/scorers/state"
)

// A checkpoint holds one file per input partition for the retrieval stage
// (state.Snapshot.Extras), a retrieval.PartitionState: the partition's
// item vocabulary, its index and its users' windows and exclude lists, so
// that it can later move with the partition.
const (
	retrievalFilePrefix = "retrieval-"
	retrievalFileSuffix = ".bin"
)

func retrievalFileName(p int32) string {
	return fmt.Sprintf("%s%04d%s", retrievalFilePrefix, p, retrievalFileSuffix)
}

// capture encodes every partition's retrieval state, for a checkpoint.
func (st *retrievalStage) capture(store *state.Store) (map[string][]byte, error) {
	users := st.usersByPartition(store)
	out := make(map[string][]byte, len(st.parts))
	for p, pi := range st.parts {
		ps := retrieval.PartitionState{Items: pi.ids, Index: pi.index, Users: make([]retrieval.UserState, 0, len(users[p]))}
		for _, su := range users[p] {
			u := &st.users[su.slot]
			ps.Users = append(ps.Users, retrieval.UserState{ID: su.id, Window: u.window, Excluded: u.excluded})
		}
		b, err := ps.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode retrieval state of partition %d: %w", p, err)
		}
		out[retrievalFileName(p)] = b
	}
	return out, nil
}

// restore replaces the stage's state by a checkpoint's files (see
// capture); users the store does not hold are skipped. Extras of other
// components are ignored.
func (st *retrievalStage) restore(extras map[string][]byte, store *state.Store) error {
	parts := map[int32]*partitionIndex{}
	type saved struct {
		slot int32
		u    userRecent
	}
	var users []saved
	for name, data := range extras {
		if !strings.HasPrefix(name, retrievalFilePrefix) || !strings.HasSuffix(name, retrievalFileSuffix) {
			continue
		}
		p, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, retrievalFilePrefix), retrievalFileSuffix), 10, 32)
		if err != nil {
			return fmt.Errorf("retrieval checkpoint file %s: no partition number in its name", name)
		}
		idx, err := retrieval.NewIndex(st.cfg.Index)
		if err != nil {
			return err
		}
		ps := retrieval.PartitionState{Index: idx}
		if err := ps.UnmarshalBinary(data); err != nil {
			return fmt.Errorf("retrieval checkpoint file %s: %w", name, err)
		}
		pi := &partitionIndex{index: idx, ids: ps.Items, vocab: make(map[string]int32, len(ps.Items))}
		for i, id := range ps.Items {
			pi.vocab[id] = int32(i)
		}
		if pi.retriever, err = retrieval.NewRetriever(idx, st.cfg, ""); err != nil {
			return err
		}
		parts[int32(p)] = pi
		for _, u := range ps.Users {
			if slot := store.Lookup(u.ID); slot != state.NoSlot {
				users = append(users, saved{slot, userRecent{partition: int32(p), window: u.Window, excluded: u.Excluded}})
			}
		}
	}
	st.parts = parts
	for i := range st.users {
		st.users[i].reset()
	}
	for _, s := range users {
		*st.user(s.slot) = s.u
	}
	st.count()
	return nil
}
