package drills

import (
	"context"
	"fmt"
	"time"
)

// brokerLossScenario kills one broker of the three (SIGKILL) for good while
// the pipeline runs: the broker that coordinates the pipeline's group, so
// that the group's coordination moves as well as a third of the partition
// leaderships. With replication factor 3 and min.insync.replicas 2, every
// acknowledged write survives on the two others and producers go on. The
// cluster stays at two brokers to the end of the drill, which is why this
// scenario runs last.
type brokerLossScenario struct{}

func (brokerLossScenario) name() string { return ScenarioBrokerLoss }

func (brokerLossScenario) describe(Config) string {
	return "one broker of three (the group's coordinator) killed with SIGKILL for good while the pipeline runs: " +
		"nothing lost, the same result, on the two brokers left"
}

func (brokerLossScenario) expected(Config) time.Duration { return 20 * time.Second }

func (brokerLossScenario) poison(Config) int { return 0 }

func (brokerLossScenario) prepare(context.Context, *drillRun) error { return nil }

func (brokerLossScenario) inject(ctx context.Context, d *drillRun) error {
	if err := d.stream.WaitProduced(ctx, len(d.records)*3/10); err != nil {
		return err
	}
	k := d.r.env.kafka
	node := pickNode(ctx, d)
	start := time.Now()
	if err := k.KillNode(node); err != nil {
		return fmt.Errorf("kill broker node %d: %w", k.NodeID(node), err)
	}
	d.fault("broker lost", fmt.Sprintf("node %d (%s) killed with SIGKILL, not restarted", k.NodeID(node), k.Addr(node)), start, start)
	if err := d.waitRecovered(ctx, start); err != nil {
		return err
	}
	d.progress("recovered", fmt.Sprintf("batches committed again %.1fs after the broker loss", time.Since(start).Seconds()))
	return nil
}

func (brokerLossScenario) check(context.Context, *drillRun, *outcome, *ScenarioResult) error {
	return nil
}
