package drills

import (
	"context"
	"fmt"
	"time"
)

// kill9Scenario kills the pipeline with SIGKILL at Kills random points (the
// seed fixes them) and restarts it at once each time. A restart restores
// the newest checkpoint, replays the input from its offsets and rewrites
// outputs that are already there; it gets its partitions once the killed
// member's session has expired (SessionTimeout), which bounds each
// recovery from below.
type kill9Scenario struct{}

func (kill9Scenario) name() string { return ScenarioKill9 }

func (kill9Scenario) describe(cfg Config) string {
	return fmt.Sprintf("kill -9 of the pipeline at %d random points (seeded), restarted at once each time: "+
		"the final state equals the reference's", cfg.Kills)
}

// killEvery bounds the random wait between a recovery and the next kill.
const (
	killMinWait = 100 * time.Millisecond
	killMaxWait = 2 * time.Second
)

func (kill9Scenario) expected(cfg Config) time.Duration {
	// Each kill: the wait, the session expiry, a start of the process.
	return time.Duration(cfg.Kills) * (cfg.SessionTimeout + killMaxWait/2 + 2*time.Second)
}

func (kill9Scenario) poison(Config) int { return 0 }

func (kill9Scenario) prepare(context.Context, *drillRun) error { return nil }

func (kill9Scenario) inject(ctx context.Context, d *drillRun) error {
	kills := d.r.cfg.Kills
	for i := 1; i <= kills; i++ {
		// A random point of a pipeline that is writing: mid-batch,
		// mid-commit or mid-checkpoint.
		wait := killMinWait + time.Duration(d.rng.Int64N(int64(killMaxWait-killMinWait)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if err := d.supervise(); err != nil {
			return err
		}
		start := time.Now()
		if err := d.killPipeline(); err != nil {
			return fmt.Errorf("kill -9 #%d: %w", i, err)
		}
		if err := d.startPipeline(); err != nil {
			return fmt.Errorf("restart after kill -9 #%d: %w", i, err)
		}
		restarted := time.Now()
		s := d.probe.Last()
		d.fault("kill -9", fmt.Sprintf("#%d of %d, %d of %d input records committed", i, kills, s.Committed, s.Input), start, restarted)
		if err := d.waitRecovered(ctx, restarted); err != nil {
			return fmt.Errorf("after kill -9 #%d: %w", i, err)
		}
		d.progress("recovered", fmt.Sprintf("kill -9 #%d: batches committed again %.1fs after the kill", i, time.Since(start).Seconds()))
	}
	return nil
}

func (kill9Scenario) check(context.Context, *drillRun, *outcome, *ScenarioResult) error { return nil }
