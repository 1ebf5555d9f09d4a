package consumers

import "slices"

// ConsumerStats is a snapshot of a Consumer's state, for metrics and tests.
type ConsumerStats struct {
	// Generation is the current group generation, 0 between generations.
	Generation int32
	// Partitions are the partitions assigned in the current generation.
	Partitions []int
	// BufferedBatches counts complete batches waiting for Next; it never
	// exceeds MaxBufferedBatches.
	BufferedBatches int
	// PartialRecords counts records in the batch being built.
	PartialRecords int
	// Delivered is, per partition assigned, the offset after the last
	// record Next returned (absent until Next returned one).
	Delivered map[int]int64
	// Committed is, per partition assigned, the last offset committed by
	// this consumer or found committed when the partition was assigned
	// (absent when the group has none).
	Committed map[int]int64
	// Truncated counts records the broker deleted (retention, or a
	// DeleteRecords call) before this consumer read them. Anything but 0 is
	// data loss outside recstream: the input topic's retention is shorter
	// than the pipeline's lag or outage, or than the age of the records'
	// timestamps (time retention judges a record by its timestamp).
	Truncated int64
}

// Stats returns a snapshot of the consumer's state.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ConsumerStats{BufferedBatches: len(c.ready), PartialRecords: c.batcher.Records(), Truncated: c.truncated}
	if c.gen != nil {
		s.Generation = c.gen.ID
	}
	for p := range c.assigned {
		s.Partitions = append(s.Partitions, p)
	}
	slices.Sort(s.Partitions)
	s.Delivered = make(map[int]int64, len(c.delivered))
	for p, o := range c.delivered {
		if c.assigned[p] {
			s.Delivered[p] = o
		}
	}
	s.Committed = make(map[int]int64, len(c.committed))
	for p, o := range c.committed {
		if c.assigned[p] && o > 0 {
			s.Committed[p] = o
		}
	}
	return s
}
