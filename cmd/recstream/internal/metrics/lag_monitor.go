package metrics

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// LagMonitor lists the input topic's start and end offsets every interval
// (one cheap ListOffsets round trip per broker), so that consumer lag can
// be computed at scrape time against the consumer's own positions. It uses
// a franz-go client of its own, never the consumer's connections.
type LagMonitor struct {
	adm      *kadm.Client
	topic    string
	interval time.Duration
	log      *zap.Logger

	mu       sync.Mutex
	ends     map[int32]int64
	starts   map[int32]int64
	at       time.Time
	failures uint64
}

// NewLagMonitor returns a monitor of topic through client, which it does
// not close. interval zero means 10s. log nil means no logging.
func NewLagMonitor(client *kgo.Client, topic string, interval time.Duration, log *zap.Logger) *LagMonitor {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &LagMonitor{adm: kadm.NewClient(client), topic: topic, interval: interval, log: log}
}

// Run lists the offsets now and then every interval until ctx ends.
func (m *LagMonitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("list input end offsets failed; lag metrics are stale", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh lists the offsets once.
func (m *LagMonitor) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(m.interval, 5*time.Second))
	defer cancel()
	ends, err := m.list(ctx, m.adm.ListEndOffsets)
	if err == nil {
		var starts map[int32]int64
		if starts, err = m.list(ctx, m.adm.ListStartOffsets); err == nil {
			m.mu.Lock()
			m.ends, m.starts, m.at = ends, starts, time.Now()
			m.mu.Unlock()
			return nil
		}
	}
	m.mu.Lock()
	m.failures++
	m.mu.Unlock()
	return err
}

func (m *LagMonitor) list(ctx context.Context, fn func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
	listed, err := fn(ctx, m.topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", m.topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// Offsets returns the last listing: end and start offsets by partition,
// when they were listed (zero: never), and how many listings failed.
func (m *LagMonitor) Offsets() (ends, starts map[int32]int64, at time.Time, failures uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.ends), maps.Clone(m.starts), m.at, m.failures
}
