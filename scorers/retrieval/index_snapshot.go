package retrieval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Snapshot layout (little-endian): "RSIX", version, the configuration, the
// clock and scales, the counters, then per item its counts and edge lists,
// then the two ranked lists. Edge lists are written in their stored order,
// so the bytes are a pure function of the visits learned.
const (
	snapshotMagic   = "RSIX"
	snapshotVersion = 1
)

// MarshalBinary encodes the whole index: restoring it with UnmarshalBinary
// and learning the same visits gives the same bytes as never stopping.
func (x *Index) MarshalBinary() ([]byte, error) {
	st := x.Stats()
	b := make([]byte, 0, 128+st.Items*20+st.Edges*8+(len(x.popular.items)+len(x.trendy.items))*12)
	le := binary.LittleEndian
	b = append(b, snapshotMagic...)
	b = le.AppendUint32(b, snapshotVersion)
	for _, v := range []int{x.cfg.MaxItems, x.cfg.Neighbours, x.cfg.Window, x.cfg.TopItems} {
		b = le.AppendUint32(b, uint32(v))
	}
	for _, v := range []int64{x.cfg.HalfLife.Milliseconds(), x.cfg.TrendHalfLife.Milliseconds(),
		x.nowMs, x.anchorMs, x.visits, x.dropped, x.rescales} {
		b = le.AppendUint64(b, uint64(v))
	}
	b = le.AppendUint64(b, math.Float64bits(x.gain))
	b = le.AppendUint64(b, math.Float64bits(x.trendGain))
	b = le.AppendUint32(b, uint32(len(x.items)))
	for i := range x.items {
		it := &x.items[i]
		b = le.AppendUint64(b, math.Float64bits(x.counts[i]))
		b = le.AppendUint64(b, math.Float64bits(it.trend))
		for _, l := range [][]Edge{it.covisits, it.successors} {
			b = le.AppendUint16(b, uint16(len(l)))
			for _, e := range l {
				b = le.AppendUint32(b, uint32(e.Item))
				b = le.AppendUint32(b, math.Float32bits(e.Weight))
			}
		}
	}
	for _, t := range []*topList{&x.popular, &x.trendy} {
		b = le.AppendUint16(b, uint16(len(t.items)))
		for _, s := range t.items {
			b = le.AppendUint32(b, uint32(s.item))
			b = le.AppendUint64(b, math.Float64bits(s.value))
		}
	}
	return b, nil
}

// UnmarshalBinary replaces x's contents with a snapshot written by
// MarshalBinary. The snapshot's configuration must equal x's: edges kept
// under another neighbour count or half-life would not mean the same.
func (x *Index) UnmarshalBinary(data []byte) error {
	r := snapshotReader{b: data}
	if string(r.bytes(4)) != snapshotMagic {
		return errors.New("item index snapshot: not an item index snapshot (bad magic)")
	}
	if v := r.u32(); v != snapshotVersion && r.err == nil {
		return fmt.Errorf("item index snapshot: version %d, this build reads %d", v, snapshotVersion)
	}
	var cfg IndexConfig
	cfg.MaxItems, cfg.Neighbours, cfg.Window, cfg.TopItems = int(r.u32()), int(r.u32()), int(r.u32()), int(r.u32())
	cfg.HalfLife = time.Duration(r.u64()) * time.Millisecond
	cfg.TrendHalfLife = time.Duration(r.u64()) * time.Millisecond
	if r.err == nil && cfg != x.cfg {
		return fmt.Errorf("item index snapshot: written with %+v, configured %+v: restore with the configuration it was written with, or rebuild the index by replay", cfg, x.cfg)
	}
	y := Index{cfg: x.cfg, popular: topList{size: x.cfg.TopItems}, trendy: topList{size: x.cfg.TopItems}}
	y.nowMs, y.anchorMs = int64(r.u64()), int64(r.u64())
	y.visits, y.dropped, y.rescales = int64(r.u64()), int64(r.u64()), int64(r.u64())
	y.gain, y.trendGain = math.Float64frombits(r.u64()), math.Float64frombits(r.u64())
	n := int(r.u32())
	if r.err == nil && n > y.cfg.MaxItems {
		return fmt.Errorf("item index snapshot: %d items, max_items is %d", n, y.cfg.MaxItems)
	}
	if r.err == nil {
		y.items = make([]itemStats, n)
		y.counts = make([]float64, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		it := &y.items[i]
		y.counts[i], it.trend = math.Float64frombits(r.u64()), math.Float64frombits(r.u64())
		it.covisits = r.edges(y.cfg.Neighbours)
		it.successors = r.edges(y.cfg.Neighbours)
	}
	for _, t := range []*topList{&y.popular, &y.trendy} {
		m := int(r.u16())
		if r.err == nil && m > t.size {
			r.err = fmt.Errorf("ranked list of %d items, top_items is %d", m, t.size)
		}
		for j := 0; j < m && r.err == nil; j++ {
			t.items = append(t.items, scoredItem{item: int32(r.u32()), value: math.Float64frombits(r.u64())})
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the end", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("item index snapshot: %w", r.err)
	}
	*x = y
	return nil
}

// snapshotReader reads little-endian fields, remembering the first error
// (a truncated snapshot) so that decoding reads straight through.
type snapshotReader struct {
	b   []byte
	err error
}

func (r *snapshotReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *snapshotReader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *snapshotReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *snapshotReader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// edges reads a counted edge list of at most limit edges.
func (r *snapshotReader) edges(limit int) []Edge {
	n := int(r.u16())
	if r.err == nil && n > limit {
		r.err = fmt.Errorf("edge list of %d, neighbours is %d", n, limit)
	}
	if r.err != nil || n == 0 {
		return nil
	}
	l := make([]Edge, n)
	for i := range l {
		l[i] = Edge{Item: int32(r.u32()), Weight: math.Float32frombits(r.u32())}
	}
	return l
}

// str reads a string written as a uvarint length and its bytes.
func (r *snapshotReader) str() string {
	if r.err != nil {
		return ""
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = errors.New("truncated")
		return ""
	}
	r.b = r.b[k:]
	return string(r.bytes(int(n)))
}
