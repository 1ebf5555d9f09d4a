package generator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
)

// ProduceConfig says where and how fast records are written.
type ProduceConfig struct {
	Brokers []string
	Topic   string
	// Rate caps records per second; 0 means as fast as the broker takes them.
	Rate float64
	// Progress, if set, is called after each acknowledged chunk with the
	// number of records written so far.
	Progress func(done int)
	// Auth secures the connections (TLS, SASL); nil means plaintext.
	Auth *kafkaauth.Auth
}

// chunk is how many records one WriteMessages call carries; several calls
// run at once, since kafka-go's Writer is fastest with concurrent callers.
const (
	chunk      = 2000
	concurrent = 4
)

// Produce writes n records of g to Kafka, keyed by user id, and returns the
// records by kind (KindValid counts the good ones). It returns once every
// record is acknowledged by the broker (acks=all).
func Produce(ctx context.Context, cfg ProduceConfig, g *Generator, n int) (map[string]int, error) {
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Hash{},
		BatchSize:    chunk,
		BatchBytes:   1 << 20, // larger batches fail with Message Size Too Large
		BatchTimeout: 2 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		Transport:    cfg.Auth.Transport(0), // its own: the shared default caches stale topic metadata
	}
	defer w.Close()

	kinds := map[string]int{}
	sem := make(chan struct{}, concurrent)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	start := time.Now()
	for sent := 0; sent < n; {
		size := min(chunk, n-sent)
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / cfg.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return kinds, ctx.Err()
				}
			}
		}
		msgs := make([]kafka.Message, size)
		for i := range msgs {
			r := g.Next()
			kinds[r.Kind]++
			// Time stays zero: the writer stamps the send time, which the
			// pipeline's latency figures start from.
			msgs[i] = kafka.Message{Key: r.Key, Value: r.Value}
		}
		sent += size
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return kinds, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := w.WriteMessages(ctx, msgs...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("produce %d records to %s: %w", len(msgs), cfg.Topic, err)
			}
			done += len(msgs)
			if cfg.Progress != nil {
				cfg.Progress(done)
			}
		}()
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			break
		}
	}
	wg.Wait()
	return kinds, firstErr
}
