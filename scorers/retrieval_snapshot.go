package scorers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/recstream/recstream/scorers/retrieval"
	"github.com/recstream/recstream/scorers/state"
)

// A checkpoint holds one file per input partition for the retrieval stage
// (state.Snapshot.Extras): the partition's item vocabulary, its index and
// its users' windows and exclude lists, so that it can later move with
// the partition. Layout (little-endian): "RSRP", version, the vocabulary
// (count, then each id's length and bytes), the index snapshot (length,
// bytes), then the users (count; each: id, visits, exclude list).
const (
	retrievalFilePrefix = "retrieval-"
	retrievalFileSuffix = ".bin"
	retrievalMagic      = "RSRP"
	retrievalVersion    = 1
)

func retrievalFileName(p int32) string {
	return fmt.Sprintf("%s%04d%s", retrievalFilePrefix, p, retrievalFileSuffix)
}

// capture encodes every partition's retrieval state, for a checkpoint.
func (st *retrievalStage) capture(store *state.Store) (map[string][]byte, error) {
	users := st.usersByPartition(store)
	out := make(map[string][]byte, len(st.parts))
	for p, pi := range st.parts {
		idx, err := pi.index.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode item index of partition %d: %w", p, err)
		}
		le := binary.LittleEndian
		b := make([]byte, 0, len(idx)+16*len(pi.ids)+64*len(users[p]))
		b = append(b, retrievalMagic...)
		b = le.AppendUint32(b, retrievalVersion)
		b = le.AppendUint32(b, uint32(len(pi.ids)))
		for _, id := range pi.ids {
			b = appendString(b, id)
		}
		b = le.AppendUint64(b, uint64(len(idx)))
		b = append(b, idx...)
		b = le.AppendUint32(b, uint32(len(users[p])))
		for _, su := range users[p] {
			u := &st.users[su.slot]
			b = appendString(b, su.id)
			b = le.AppendUint16(b, uint16(len(u.window.Visits)))
			for _, v := range u.window.Visits {
				b = le.AppendUint32(b, uint32(v.Item))
				b = le.AppendUint64(b, uint64(v.TsMs))
				b = le.AppendUint32(b, math.Float32bits(v.Weight))
			}
			b = le.AppendUint16(b, uint16(len(u.excluded)))
			for _, it := range u.excluded {
				b = le.AppendUint32(b, uint32(it))
			}
		}
		out[retrievalFileName(p)] = b
	}
	return out, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
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
		pi, restored, err := st.decodePartition(int32(p), data, store)
		if err != nil {
			return fmt.Errorf("retrieval checkpoint file %s: %w", name, err)
		}
		parts[int32(p)] = pi
		for slot, u := range restored {
			users = append(users, saved{slot, u})
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

func (st *retrievalStage) decodePartition(p int32, data []byte, store *state.Store) (*partitionIndex, map[int32]userRecent, error) {
	r := &byteReader{b: data}
	if string(r.bytes(4)) != retrievalMagic {
		return nil, nil, errors.New("not a retrieval state file")
	}
	if v := r.u32(); v != retrievalVersion {
		return nil, nil, fmt.Errorf("version %d, this build reads %d", v, retrievalVersion)
	}
	n := int(r.u32())
	if n > st.cfg.Index.MaxItems || n > len(data) {
		return nil, nil, fmt.Errorf("%d items, more than index.max_items %d", n, st.cfg.Index.MaxItems)
	}
	pi := &partitionIndex{vocab: make(map[string]int32, n), ids: make([]string, 0, n)}
	for i := range n {
		id := r.str()
		pi.vocab[id] = int32(i)
		pi.ids = append(pi.ids, id)
	}
	idx := r.bytes(int(r.u64()))
	if r.err != nil {
		return nil, nil, r.err
	}
	var err error
	if pi.index, err = retrieval.NewIndex(st.cfg.Index); err != nil {
		return nil, nil, err
	}
	if err := pi.index.UnmarshalBinary(idx); err != nil {
		return nil, nil, fmt.Errorf("item index: %w", err)
	}
	if pi.retriever, err = retrieval.NewRetriever(pi.index, st.cfg, ""); err != nil {
		return nil, nil, err
	}
	users := map[int32]userRecent{}
	for range int(r.u32()) {
		id := r.str()
		u := userRecent{partition: p}
		for range int(r.u16()) {
			v := retrieval.Visit{Item: int32(r.u32()), TsMs: int64(r.u64()), Weight: math.Float32frombits(r.u32())}
			u.window.Visits = append(u.window.Visits, v)
		}
		for range int(r.u16()) {
			u.excluded = append(u.excluded, int32(r.u32()))
		}
		if r.err != nil {
			return nil, nil, r.err
		}
		for _, it := range slices.Concat(u.excluded, visitItems(u.window.Visits)) {
			if it < 0 || int(it) >= n {
				return nil, nil, fmt.Errorf("user %s names item %d of %d", id, it, n)
			}
		}
		if slot := store.Lookup(id); slot != state.NoSlot {
			users[slot] = u
		}
	}
	if r.err == nil && r.off != len(data) {
		return nil, nil, fmt.Errorf("%d bytes after the last user", len(data)-r.off)
	}
	return pi, users, r.err
}

func visitItems(vs []retrieval.Visit) []int32 {
	out := make([]int32, len(vs))
	for i, v := range vs {
		out[i] = v.Item
	}
	return out
}

// byteReader reads the layout above, remembering the first short read.
type byteReader struct {
	b   []byte
	off int
	err error
}

func (r *byteReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		if r.err == nil {
			r.err = errors.New("truncated")
		}
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *byteReader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *byteReader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *byteReader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *byteReader) str() string {
	if r.err != nil {
		return ""
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.err = errors.New("truncated")
		return ""
	}
	r.off += k
	return string(r.bytes(int(n)))
}
