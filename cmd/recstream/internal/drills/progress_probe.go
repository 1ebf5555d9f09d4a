package drills

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Sample is one observation of a scenario's progress, as the brokers report
// it.
type Sample struct {
	// At is the time of the observation, in seconds since the scenario
	// started.
	At float64 `json:"t"`
	// Input is the number of input records in the log (end offsets summed).
	Input int64 `json:"input"`
	// Committed is the pipeline group's committed input offsets, summed.
	Committed int64 `json:"committed"`
	// Output is the number of records in the output topic (end offsets
	// summed), rewrites included.
	Output int64 `json:"output"`
}

// probeInterval is how often the probe asks the brokers: fine enough to
// time a recovery to about a tenth of a second, coarse enough to leave the
// 2-core machine to the pipeline.
const probeInterval = 100 * time.Millisecond

// progressProbe samples the input's and the output's end offsets and the
// group's committed offsets until stopped. A sample the brokers do not
// answer in time keeps the previous values (a broker loss makes some
// requests wait for new leaders).
type progressProbe struct {
	adm                  *kadm.Client
	input, output, group string
	began                time.Time

	mu      sync.Mutex
	samples []Sample
	last    Sample

	stop context.CancelFunc
	done chan struct{}
}

func startProbe(adm *kadm.Client, input, output, group string, began time.Time) *progressProbe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &progressProbe{adm: adm, input: input, output: output, group: group, began: began, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(probeInterval)
		defer tick.Stop()
		for {
			p.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *progressProbe) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s := p.Last()
	if n, ok := sumEndOffsets(ctx, p.adm, p.input); ok {
		s.Input = n
	}
	if n, ok := sumEndOffsets(ctx, p.adm, p.output); ok {
		s.Output = n
	}
	if n, ok := sumCommitted(ctx, p.adm, p.group, p.input); ok {
		s.Committed = n
	}
	s.At = time.Since(p.began).Seconds()
	p.mu.Lock()
	p.samples = append(p.samples, s)
	p.last = s
	p.mu.Unlock()
}

// Last returns the newest sample.
func (p *progressProbe) Last() Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Stop ends sampling and returns every sample.
func (p *progressProbe) Stop() []Sample {
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples
}

// sumEndOffsets returns the sum of topic's end offsets; false when a
// partition did not answer (a topic not created yet sums to 0).
func sumEndOffsets(ctx context.Context, adm *kadm.Client, topic string) (int64, bool) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, false
	}
	var sum int64
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			ok = false
		default:
			sum += o.Offset
		}
	})
	return sum, ok
}

// sumCommitted returns the sum of group's committed offsets on topic; a
// group that has committed nothing yet sums to 0.
func sumCommitted(ctx context.Context, adm *kadm.Client, group, topic string) (int64, bool) {
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	var sum int64
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum, true
}

// recoveryStall is how long progress must stop after a fault to count as
// the outage the fault caused; see recoveryTime.
const recoveryStall = 0.5

// recoveryWindow is how long after a fault's repair (its end) a stall may
// begin and still be counted as caused by the fault.
const recoveryWindow = 2.0

// progressSignal says whether a sample shows progress over the one before.
type progressSignal func(prev, cur Sample) bool

// commitsMoved is the end-to-end signal: the group committed new offsets,
// which the pipeline does only once every sink acknowledged a batch. It
// looks for any change, not only growth: a pipeline restarted from a
// checkpoint commits offsets below the ones committed before the crash.
func commitsMoved(prev, cur Sample) bool { return cur.Committed != prev.Committed }

// outputGrew is the output topic's end offsets growing: a record was
// written. It also counts the partial retries of a batch whose write
// failed for some partitions, so it can show output before the pipeline
// has recovered.
func outputGrew(prev, cur Sample) bool { return cur.Output > prev.Output }

// recoveryTime finds when progress, by signal, recovered from a fault that
// began at start and was repaired at end (seconds since the scenario
// began; end == start for a fault with no repair, such as a broker lost
// for good).
//
// Recovery is the first progress that ends a stall — at least
// recoveryStall seconds without progress — which began between start and
// end+recoveryWindow: work already in flight when the fault hit, and
// finished just after it, is not a recovery. When progress never stalled,
// recovery is the first progress after start. ok is false when there was
// no progress after start at all, or when the samples end in such a stall
// with input still waiting to be committed.
func recoveryTime(samples []Sample, start, end float64, signal progressSignal) (at float64, ok bool) {
	if len(samples) == 0 {
		return 0, false
	}
	var moves []float64
	for i := 1; i < len(samples); i++ {
		if samples[i].At >= start && signal(samples[i-1], samples[i]) {
			moves = append(moves, samples[i].At)
		}
	}
	if len(moves) == 0 {
		return 0, false
	}
	prev := start
	for _, m := range moves {
		if prev > end+recoveryWindow {
			break
		}
		if m-prev >= recoveryStall {
			return m, true
		}
		prev = m
	}
	// A stall that lasts to the end is no recovery unless the input was
	// all committed by then (a finished run is quiet too).
	last := samples[len(samples)-1]
	if prev <= end+recoveryWindow && last.At-prev >= recoveryStall && last.Committed < last.Input {
		return 0, false
	}
	return moves[0], true
}
