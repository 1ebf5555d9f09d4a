package retrieval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// PartitionState is what a checkpoint keeps of the retrieval of one input
// partition: its item vocabulary (item index -> id), its index, and its
// users' windows and exclude lists, in the vocabulary's indices.
type PartitionState struct {
	Items []string
	Index *Index
	Users []UserState
}

// UserState is one user's retrieval state.
type UserState struct {
	ID       string
	Window   Window
	Excluded []int32
}

// Layout (little-endian): "RSRP", version, the vocabulary (count, then each
// id as a uvarint length and its bytes), the index snapshot (length,
// bytes), then the users (count; each: id, visits, exclude list).
const (
	partitionMagic   = "RSRP"
	partitionVersion = 1
)

// MarshalBinary encodes p.
func (p *PartitionState) MarshalBinary() ([]byte, error) {
	idx, err := p.Index.MarshalBinary()
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	b := make([]byte, 0, len(idx)+16*len(p.Items)+64*len(p.Users))
	b = append(b, partitionMagic...)
	b = le.AppendUint32(b, partitionVersion)
	b = le.AppendUint32(b, uint32(len(p.Items)))
	for _, id := range p.Items {
		b = appendString(b, id)
	}
	b = le.AppendUint64(b, uint64(len(idx)))
	b = append(b, idx...)
	b = le.AppendUint32(b, uint32(len(p.Users)))
	for _, u := range p.Users {
		b = appendString(b, u.ID)
		b = le.AppendUint16(b, uint16(len(u.Window.Visits)))
		for _, v := range u.Window.Visits {
			b = le.AppendUint32(b, uint32(v.Item))
			b = le.AppendUint64(b, uint64(v.TsMs))
			b = le.AppendUint32(b, math.Float32bits(v.Weight))
		}
		b = le.AppendUint16(b, uint16(len(u.Excluded)))
		for _, it := range u.Excluded {
			b = le.AppendUint32(b, uint32(it))
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary replaces p's items and users by data's; p.Index must be
// an index of the serving configuration (NewIndex), which receives the
// saved index (see Index.UnmarshalBinary). Every item a user names must be
// in the vocabulary.
func (p *PartitionState) UnmarshalBinary(data []byte) error {
	if p.Index == nil {
		return errors.New("partition state: no index to restore into")
	}
	r := snapshotReader{b: data}
	if string(r.bytes(4)) != partitionMagic {
		return errors.New("not a retrieval partition state")
	}
	if v := r.u32(); v != partitionVersion && r.err == nil {
		return fmt.Errorf("partition state version %d, this build reads %d", v, partitionVersion)
	}
	n := int(r.u32())
	if r.err == nil && (n > p.Index.cfg.MaxItems || n > len(data)) {
		return fmt.Errorf("%d items, more than index.max_items %d", n, p.Index.cfg.MaxItems)
	}
	items := make([]string, 0, n)
	for range n {
		items = append(items, r.str())
	}
	if idx := r.bytes(int(r.u64())); r.err == nil {
		if err := p.Index.UnmarshalBinary(idx); err != nil {
			return err
		}
	}
	var users []UserState
	for range int(r.u32()) {
		u := UserState{ID: r.str()}
		for range int(r.u16()) {
			u.Window.Visits = append(u.Window.Visits,
				Visit{Item: int32(r.u32()), TsMs: int64(r.u64()), Weight: math.Float32frombits(r.u32())})
		}
		for range int(r.u16()) {
			u.Excluded = append(u.Excluded, int32(r.u32()))
		}
		if r.err != nil {
			break
		}
		for _, v := range u.Window.Visits {
			if v.Item < 0 || int(v.Item) >= n {
				return fmt.Errorf("user %s names item %d of %d", u.ID, v.Item, n)
			}
		}
		for _, it := range u.Excluded {
			if it < 0 || int(it) >= n {
				return fmt.Errorf("user %s names item %d of %d", u.ID, it, n)
			}
		}
		users = append(users, u)
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d bytes after the last user", len(r.b))
	}
	p.Items, p.Users = items, users
	return nil
}
