package drills

import (
	"context"
	"fmt"
	"time"
)

// clickHouseOutageScenario kills the ClickHouse server (SIGKILL) while the
// pipeline runs, keeps it down for Outage, and starts it again on the same
// data. The pipeline must pause (back-pressure: it retries the batch with
// backoff and takes no other), not crash and not drop anything, and resume
// once the server is back.
type clickHouseOutageScenario struct{}

func (clickHouseOutageScenario) name() string { return ScenarioClickHouseOutage }

func (clickHouseOutageScenario) describe(cfg Config) string {
	return fmt.Sprintf("ClickHouse killed (SIGKILL) for %s while the pipeline runs, then restarted on its data: "+
		"the pipeline pauses and retries, loses nothing and resumes", cfg.Outage)
}

func (clickHouseOutageScenario) expected(cfg Config) time.Duration { return cfg.Outage + 8*time.Second }

func (clickHouseOutageScenario) poison(Config) int { return 0 }

func (clickHouseOutageScenario) prepare(context.Context, *drillRun) error { return nil }

func (clickHouseOutageScenario) inject(ctx context.Context, d *drillRun) error {
	if err := d.stream.WaitProduced(ctx, len(d.records)*3/10); err != nil {
		return err
	}
	ch := d.r.env.ch
	start := time.Now()
	if err := ch.Kill(); err != nil {
		return fmt.Errorf("kill clickhouse: %w", err)
	}
	d.progress("fault", fmt.Sprintf("clickhouse killed; down for %s", d.r.cfg.Outage))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d.r.cfg.Outage):
	}
	stalled := d.probe.Last()
	if err := ch.Restart(ctx); err != nil {
		return fmt.Errorf("restart clickhouse: %w", err)
	}
	restarted := time.Now()
	d.fault("clickhouse down", fmt.Sprintf("SIGKILL, restarted after %s", restarted.Sub(start).Round(10*time.Millisecond)), start, restarted)
	d.note("while ClickHouse was down the group's committed offsets stood at %d of %d input records produced",
		stalled.Committed, stalled.Input)
	if err := d.waitRecovered(ctx, restarted); err != nil {
		return err
	}
	d.progress("recovered", fmt.Sprintf("batches committed again %.1fs after the kill", time.Since(start).Seconds()))
	return nil
}

// check verifies back-pressure: while ClickHouse was down, commits must
// have stopped (a commit means every sink acknowledged the batch).
func (clickHouseOutageScenario) check(_ context.Context, d *drillRun, _ *outcome, res *ScenarioResult) error {
	if len(d.faults) != 1 {
		return nil
	}
	f := d.faults[0]
	// Commits may finish for the batch in flight when the server died; one
	// second later nothing may move until the server is back.
	var first, last int64 = -1, -1
	for _, s := range res.Samples {
		if s.At >= f.Start+1 && s.At < f.End {
			if first < 0 {
				first = s.Committed
			}
			last = s.Committed
		}
	}
	if first >= 0 && last != first {
		res.breaks("commits went on while ClickHouse was down (%d → %d input records committed): a batch was "+
			"acknowledged without the ClickHouse sink", first, last)
	}
	return nil
}
