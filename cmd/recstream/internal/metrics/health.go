package metrics

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
)

// Phase is where the process is in its life, as the probes see it.
type Phase int32

// Phases, in order.
const (
	// PhaseStarting: connecting to Kafka and ClickHouse, loading the model.
	// Live, not ready.
	PhaseStarting Phase = iota
	// PhaseRestoring: loading user state from a checkpoint. Live, not ready.
	PhaseRestoring
	// PhaseRunning: the pipeline runs. Live; ready unless a readiness check
	// fails.
	PhaseRunning
	// PhaseStopping: draining the in-flight batch after SIGTERM. Live, not
	// ready.
	PhaseStopping
	// PhaseStopped: the pipeline loop has returned. Neither.
	PhaseStopped
)

func (p Phase) String() string {
	switch p {
	case PhaseStarting:
		return "starting: connecting to Kafka and ClickHouse, loading the model"
	case PhaseRestoring:
		return "restoring user state from a checkpoint"
	case PhaseRunning:
		return "running"
	case PhaseStopping:
		return "stopping: draining the in-flight batch"
	case PhaseStopped:
		return "stopped: the pipeline loop has returned"
	}
	return fmt.Sprintf("phase %d", int32(p))
}

// Check is one probe condition: nil when it holds, else an error that
// says why not (the probe's body shows it).
type Check func() error

// Health answers the liveness and readiness probes: liveness says the
// process loop is alive (restart it if not), readiness that it is doing
// its work now (not restoring, every sink writable, partitions assigned).
// The zero value is not usable: call NewHealth. Safe for concurrent use.
type Health struct {
	phase atomic.Int32

	mu        sync.Mutex
	readiness []namedCheck
	liveness  []namedCheck
}

type namedCheck struct {
	name  string
	check Check
}

// NewHealth returns a Health in PhaseStarting with no checks.
func NewHealth() *Health { return &Health{} }

// SetPhase moves the process to p.
func (h *Health) SetPhase(p Phase) { h.phase.Store(int32(p)) }

// Phase is the current phase.
func (h *Health) Phase() Phase { return Phase(h.phase.Load()) }

// AddReadinessCheck adds a condition for readiness while running.
func (h *Health) AddReadinessCheck(name string, c Check) {
	h.mu.Lock()
	h.readiness = append(h.readiness, namedCheck{name, c})
	h.mu.Unlock()
}

// AddLivenessCheck adds a condition for liveness.
func (h *Health) AddLivenessCheck(name string, c Check) {
	h.mu.Lock()
	h.liveness = append(h.liveness, namedCheck{name, c})
	h.mu.Unlock()
}

// Ready reports readiness and, when not ready, every reason.
func (h *Health) Ready() (bool, []string) {
	if p := h.Phase(); p != PhaseRunning {
		return false, []string{"phase: " + p.String()}
	}
	return h.run(h.checks(&h.readiness))
}

// Live reports liveness and, when not live, every reason.
func (h *Health) Live() (bool, []string) {
	if p := h.Phase(); p == PhaseStopped {
		return false, []string{"phase: " + p.String()}
	}
	return h.run(h.checks(&h.liveness))
}

func (h *Health) checks(list *[]namedCheck) []namedCheck {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]namedCheck(nil), *list...)
}

func (h *Health) run(checks []namedCheck) (bool, []string) {
	var reasons []string
	for _, c := range checks {
		if err := c.check(); err != nil {
			reasons = append(reasons, c.name+": "+err.Error())
		}
	}
	return len(reasons) == 0, reasons
}

// WatchPipeline adds the pipeline's standard checks to h: readiness needs
// input partitions assigned (src.Consumer) and no sink being retried
// (src.Pipeline); liveness needs the pipeline loop running and no batch
// held by the scorer longer than stallTimeout.
func (h *Health) WatchPipeline(src Sources, stallTimeout time.Duration) {
	if src.Consumer != nil {
		h.AddReadinessCheck("partitions", func() error {
			if st := src.Consumer.Stats(); len(st.Partitions) == 0 {
				return fmt.Errorf("no partition of %s assigned yet (joining the consumer group, or more instances than partitions)", src.Consumer.Topic())
			}
			return nil
		})
	}
	if src.Pipeline == nil {
		return
	}
	stats := src.Pipeline
	h.AddReadinessCheck("sinks", func() error { return outagesError(stats.Outages(), time.Now()) })
	h.AddLivenessCheck("pipeline", func() error {
		if !stats.Running() {
			return fmt.Errorf("the pipeline loop is not running")
		}
		if since := stats.ScoringSince(); !since.IsZero() && time.Since(since) > stallTimeout {
			return fmt.Errorf("the scorer has held one batch for %s (stall_timeout %s)", time.Since(since).Round(time.Second), stallTimeout)
		}
		return nil
	})
}

func outagesError(outages map[string]pipeline.SinkOutage, now time.Time) error {
	if len(outages) == 0 {
		return nil
	}
	var msg string
	for _, name := range slices.Sorted(maps.Keys(outages)) {
		o := outages[name]
		if msg != "" {
			msg += "; "
		}
		msg += fmt.Sprintf("%s unavailable for %s (%d failed writes, retrying): %s",
			name, now.Sub(o.Since).Round(time.Millisecond), o.Attempts, clip(o.LastError, 300))
	}
	return fmt.Errorf("%s", msg)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
