package evaluation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// KafkaRange is a range of an event topic to read: on every partition, the
// records from the start bound up to (not including) the end bound. The
// bounds by offset and by time combine (the narrower wins).
type KafkaRange struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// Topic is the event topic. Required.
	Topic string
	// FromOffset is the first offset read on each partition; a negative
	// value means the partition's start.
	FromOffset int64
	// ToOffset is the offset after the last read on each partition; a
	// negative value means the partition's end when the read starts.
	ToOffset int64
	// FromTime, when set, skips the records logged before it (by the Kafka
	// record timestamp, as ListOffsets finds them).
	FromTime time.Time
	// ToTime, when set, stops before the first record logged at or after it.
	ToTime time.Time
	// IdleTimeout ends the read when no record arrives for this long while
	// some partition has not reached its end bound (a range that ends in
	// transaction markers or compacted-away records never does).
	// Default 5s.
	IdleTimeout time.Duration
	// MinTs is the earliest event time the decoder accepts; zero means its
	// default, 2000-01-01.
	MinTs time.Time
	// ClientOptions are added to every Kafka client the loader makes: TLS
	// and SASL for a secured cluster (kafkaauth.Auth.KgoOptions).
	ClientOptions []kgo.Opt
}

// Validate checks r; errors name the flag.
func (r KafkaRange) Validate() error {
	switch {
	case len(r.Brokers) == 0:
		return errors.New("brokers: at least one is required")
	case r.Topic == "":
		return errors.New("topic: must be set")
	case r.FromOffset >= 0 && r.ToOffset >= 0 && r.ToOffset < r.FromOffset:
		return fmt.Errorf("to-offset: %d is before from-offset %d", r.ToOffset, r.FromOffset)
	case !r.FromTime.IsZero() && !r.ToTime.IsZero() && r.ToTime.Before(r.FromTime):
		return fmt.Errorf("to-time: %s is before from-time %s", r.ToTime, r.FromTime)
	}
	return nil
}

// partitionRange is [from, to) on one partition.
type partitionRange struct{ from, to int64 }

// LoadKafka reads the records of r from the topic and decodes them with
// the pipeline's event decoder (key checked against user_id, as the
// pipeline does); records it rejects are counted in Dataset.Skipped.
func LoadKafka(ctx context.Context, r KafkaRange, log *zap.Logger) (*Dataset, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("load kafka: %w", err)
	}
	if r.IdleTimeout <= 0 {
		r.IdleTimeout = 5 * time.Second
	}
	ranges, err := resolveKafkaRange(ctx, r)
	if err != nil {
		return nil, err
	}
	ds := newDataset(fmt.Sprintf("kafka topic %s", r.Topic))
	offsets := map[int32]kgo.Offset{}
	pending := map[int32]int64{} // partition -> next offset wanted
	var total int64
	for p, pr := range ranges {
		if pr.to > pr.from {
			offsets[p] = kgo.NewOffset().At(pr.from)
			pending[p] = pr.from
			total += pr.to - pr.from
		}
	}
	log.Info("reading topic range", zap.String("topic", r.Topic), zap.Int("partitions", len(ranges)), zap.Int64("records", total))
	if len(offsets) == 0 {
		return ds, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.Topic: offsets}),
		kgo.FetchMaxBytes(32 << 20)}, r.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("load kafka: client for %v: %w", r.Brokers, err)
	}
	defer cl.Close()

	dec := schemas.NewEventDecoder(schemas.EventLimits{Types: ds.Types, MinTs: r.MinTs}.WithDefaults())
	var ev schemas.Event
	for len(pending) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, r.IdleTimeout)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load kafka: %w", err)
		}
		got := 0
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return nil, fmt.Errorf("load kafka: %w", fetchErr)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			next, ok := pending[rec.Partition]
			if !ok || rec.Offset < next {
				return
			}
			pr := ranges[rec.Partition]
			if rec.Offset >= pr.to {
				delete(pending, rec.Partition)
				return
			}
			got++
			pending[rec.Partition] = rec.Offset + 1
			if rec.Offset+1 >= pr.to {
				delete(pending, rec.Partition)
			}
			if derr := dec.Decode(rec.Key, rec.Value, rec.Timestamp, &ev); derr != nil {
				ds.skip(derr.Reason)
				return
			}
			ds.add(string(ev.UserID), string(ev.ItemID), ev.Type, ev.TsMs)
		})
		if got == 0 && fetches.Empty() {
			log.Warn("no records for a while: ending the read before every partition reached its end bound",
				zap.Duration("idle_timeout", r.IdleTimeout), zap.Int("partitions_unfinished", len(pending)))
			break
		}
	}
	ds.finish()
	return ds, nil
}

// resolveKafkaRange turns r's bounds into offsets per partition.
func resolveKafkaRange(ctx context.Context, r KafkaRange) (map[int32]partitionRange, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.Brokers...)}, r.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("load kafka: client for %v: %w", r.Brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list := func(what string, f func() (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		lo, err := f()
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("load kafka: list %s offsets of %s: %w", what, r.Topic, err)
		}
		out := map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Topic == r.Topic && o.Partition >= 0 {
				out[o.Partition] = o.Offset
			}
		})
		if len(out) == 0 {
			return nil, fmt.Errorf("load kafka: topic %s has no partitions (does it exist?)", r.Topic)
		}
		return out, nil
	}
	starts, err := list("start", func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, r.Topic) })
	if err != nil {
		return nil, err
	}
	ends, err := list("end", func() (kadm.ListedOffsets, error) { return adm.ListEndOffsets(ctx, r.Topic) })
	if err != nil {
		return nil, err
	}
	ranges := make(map[int32]partitionRange, len(starts))
	for p, s := range starts {
		pr := partitionRange{from: s, to: ends[p]}
		if r.FromOffset >= 0 {
			pr.from = max(pr.from, r.FromOffset)
		}
		if r.ToOffset >= 0 {
			pr.to = min(pr.to, r.ToOffset)
		}
		ranges[p] = pr
	}
	for _, bound := range []struct {
		t    time.Time
		from bool
	}{{r.FromTime, true}, {r.ToTime, false}} {
		if bound.t.IsZero() {
			continue
		}
		at, err := list("time", func() (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, bound.t.UnixMilli(), r.Topic)
		})
		if err != nil {
			return nil, err
		}
		for p, pr := range ranges {
			o, ok := at[p]
			if !ok || o < 0 {
				continue
			}
			if bound.from {
				pr.from = max(pr.from, o)
			} else {
				pr.to = min(pr.to, o)
			}
			ranges[p] = pr
		}
	}
	return ranges, nil
}
