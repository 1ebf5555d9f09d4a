package drills

import (
	"context"
	"fmt"
	"time"
)

// brokerRestartScenario stops one broker of the three gracefully (SIGTERM:
// a controlled shutdown that moves its leaderships away first), keeps it
// down for Outage, and starts it again: a rolling restart's step. The
// broker stopped is the coordinator of the pipeline's group, so that the
// group must move too. Producers and the pipeline ride it out; the
// restarted broker catches up and rejoins every ISR before the next
// scenario.
type brokerRestartScenario struct{}

func (brokerRestartScenario) name() string { return ScenarioBrokerRestart }

func (brokerRestartScenario) describe(cfg Config) string {
	return fmt.Sprintf("one broker of three (the group's coordinator) stopped gracefully for %s and started again, "+
		"as in a rolling restart: nothing lost, the same result", cfg.Outage)
}

func (brokerRestartScenario) expected(cfg Config) time.Duration { return cfg.Outage + 20*time.Second }

func (brokerRestartScenario) poison(Config) int { return 0 }

func (brokerRestartScenario) prepare(context.Context, *drillRun) error { return nil }

func (brokerRestartScenario) inject(ctx context.Context, d *drillRun) error {
	if err := d.stream.WaitProduced(ctx, len(d.records)*3/10); err != nil {
		return err
	}
	k := d.r.env.kafka
	node := pickNode(ctx, d)
	start := time.Now()
	d.progress("fault", fmt.Sprintf("stopping broker node %d (%s)", k.NodeID(node), k.Addr(node)))
	if err := k.StopNode(node); err != nil {
		return fmt.Errorf("stop broker node %d: %w", k.NodeID(node), err)
	}
	stopped := time.Since(start)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d.r.cfg.Outage):
	}
	if err := k.StartNode(ctx, node); err != nil {
		return fmt.Errorf("start broker node %d again: %w", k.NodeID(node), err)
	}
	restarted := time.Now()
	d.fault("broker stopped", fmt.Sprintf("node %d, graceful stop took %s, started again after %s",
		k.NodeID(node), stopped.Round(10*time.Millisecond), restarted.Sub(start).Round(10*time.Millisecond)), start, restarted)
	if err := d.waitRecovered(ctx, start); err != nil {
		return err
	}
	// The next scenario needs every replica back.
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := k.WaitInSync(syncCtx); err != nil {
		return fmt.Errorf("replicas after the broker restart: %w", err)
	}
	d.note("broker node %d was stopped gracefully in %s; every replica was back in sync %s after its start",
		k.NodeID(node), stopped.Round(10*time.Millisecond), time.Since(restarted).Round(100*time.Millisecond))
	return nil
}

func (brokerRestartScenario) check(context.Context, *drillRun, *outcome, *ScenarioResult) error {
	return nil
}

// pickNode returns the node that coordinates the pipeline's group — losing
// it moves the group's coordination as well as partition leaderships — or,
// when the coordinator cannot be found, a node chosen with the scenario's
// random stream.
func pickNode(ctx context.Context, d *drillRun) int {
	k := d.r.env.kafka
	findCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	node, err := d.r.env.coordinatorNode(findCtx, d.group)
	if err != nil {
		node = d.rng.IntN(k.Nodes())
		d.note("the group's coordinator could not be found (%v); node %d was picked at random", err, k.NodeID(node))
		return node
	}
	d.note("node %d (%s) coordinates group %s", k.NodeID(node), k.Addr(node), d.group)
	return node
}
