// Package drills runs disaster-recovery drills: named fault scenarios
// against a live pipeline on real components — an Apache Kafka cluster of
// three brokers (replication factor 3, min.insync.replicas 2), a ClickHouse
// server, and the pipeline itself as a child process ("recstream run") with
// checkpoints on — and checks that recstream's guarantees hold through
// each fault:
//
//   - nothing lost: every input record is either applied (in ClickHouse
//     events FINAL) or in the dead-letter topic with its reason;
//   - the same result: the final recommendations, in ClickHouse
//     recommendations FINAL and in the output topic's newest record per
//     key, equal those of a fault-free reference run on the same input and
//     model;
//   - no double application: every rewrite of a (user, version) is
//     identical to the first write;
//   - recovery: output resumes after every fault; the time it takes is the
//     scenario's RTO.
//
// Each scenario has its own input topic, consumer group, output topic and
// ClickHouse database on the shared cluster and server, and the same input:
// a synthetic clickstream fixed by the drill's seed, produced with the
// event time as log time so that every topic holds byte-identical logs.
// The reference run consumes it once, with no fault, before the scenarios.
package drills

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

// A drillRun is one run of the pipeline on its own topics, group, database
// and checkpoints — the reference or a scenario: it starts, kills and
// supervises the pipeline process, waits for recovery and catch-up, and
// execute runs it through a scenario's faults to the common checks.

// drillRun is one run of the pipeline on its own topics, group, database
// and checkpoints: the reference or a scenario.
type drillRun struct {
	r     *Runner
	ref   *reference // the fault-free run this one is compared with
	name  string
	dir   string
	began time.Time

	topic, dlq, output, group, database string
	pcfg                                config.Config
	cfgPath, logPath                    string

	records []inputRecord
	stream  *inputStream
	probe   *progressProbe
	proc    *pipelineProcess
	faults  []Fault
	exits   int
	notes   []string
	// rng makes the scenario's random choices (kill points), from the
	// drill's seed and the scenario's name.
	rng *rand.Rand
}

func (r *Runner) newRun(name string, poison int) (*drillRun, error) {
	safe := strings.ReplaceAll(name, "-", "_")
	d := &drillRun{
		r: r, name: name, dir: filepath.Join(r.cfg.WorkDir, "scenarios", name),
		topic: "drill." + name + ".events", dlq: "drill." + name + ".dlq", output: "drill." + name + ".recs",
		group: "drill." + name, database: "drill_" + safe,
		rng: rand.New(rand.NewPCG(r.cfg.Seed, nameSeed(name))),
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", d.dir, err)
	}
	d.cfgPath, d.logPath = filepath.Join(d.dir, "recstream.yaml"), filepath.Join(d.dir, "pipeline.log")
	d.records = buildInput(r.cfg.Seed, r.cfg.Events, poison)

	c := config.Config{Kafka: config.KafkaConfig{Brokers: r.env.kafka.Addrs()}}
	c.Input.Topic, c.Input.GroupID, c.Input.DeadLetterTopic = d.topic, d.group, d.dlq
	c.Input.SessionTimeout, c.Input.HeartbeatInterval = r.cfg.SessionTimeout, r.cfg.HeartbeatInterval
	c.Input.Batch.MaxRows = r.cfg.BatchRows
	c.Scorer.ModelDir = r.env.modelDir(r.env.v1)
	c.ClickHouse.Addr, c.ClickHouse.Database = []string{r.env.ch.Addr()}, d.database
	c.Output.Topic, c.Output.Partitions, c.Output.ReplicationFactor = d.output, r.cfg.Partitions, replicationFactor
	c.Checkpoint.Dir, c.Checkpoint.Interval, c.Checkpoint.Keep = filepath.Join(d.dir, "checkpoints"), r.cfg.CheckpointInterval, 3
	// A repaired sink is noticed within half a second.
	c.Pipeline.RetryInitial, c.Pipeline.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	c.Log.Format, c.Log.Level = "json", "info"
	d.pcfg = c
	return d, nil
}

// writeConfig writes d.pcfg, checked as recstream run will check it.
func (d *drillRun) writeConfig() error {
	c := d.pcfg.WithDefaults()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("pipeline config: %w", err)
	}
	raw, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode pipeline config: %w", err)
	}
	if err := os.WriteFile(d.cfgPath, raw, 0o600); err != nil {
		return fmt.Errorf("write pipeline config: %w", err)
	}
	return nil
}

func (d *drillRun) progress(phase, detail string) {
	d.r.observe(Event{Scenario: d.name, Phase: phase, Detail: detail})
}

// since is t in seconds since the run began.
func (d *drillRun) since(t time.Time) float64 { return t.Sub(d.began).Seconds() }

// fault records a fault injected at start and repaired at end.
func (d *drillRun) fault(kind, detail string, start, end time.Time) {
	d.faults = append(d.faults, Fault{Kind: kind, Detail: detail, Start: d.since(start), End: d.since(end)})
	msg := kind
	if detail != "" {
		msg += ": " + detail
	}
	d.progress("fault", msg)
}

func (d *drillRun) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

// startPipeline starts a new pipeline process.
func (d *drillRun) startPipeline() error {
	p, err := startPipeline(d.r.cfg.Binary, d.cfgPath, d.logPath)
	if err != nil {
		return err
	}
	d.proc = p
	return nil
}

// killPipeline kills the pipeline with SIGKILL and returns when it is gone.
func (d *drillRun) killPipeline() error {
	return d.proc.Kill()
}

// recoveryTimeout bounds the wait for output after a fault.
const recoveryTimeout = 2 * time.Minute

// waitRecovered waits until the group commits input offsets after
// repaired (the moment the fault was repaired), or the input is all
// consumed with nothing left to commit. It restarts a pipeline that exits
// on its own.
func (d *drillRun) waitRecovered(ctx context.Context, repaired time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	var base Sample
	seen := false
	for {
		if err := d.supervise(); err != nil {
			return err
		}
		s := d.probe.Last()
		if s.At >= d.since(repaired) {
			if !seen {
				base, seen = s, true
			} else if commitsMoved(base, s) {
				return nil
			}
			if s.Committed >= s.Input && d.stream.Produced() == len(d.records) && s.Input == int64(len(d.records)) {
				return nil // nothing left to do
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no batch committed within %s of the repair at %.1fs: %w", recoveryTimeout, d.since(repaired), ctx.Err())
		case <-time.After(probeInterval / 2):
		}
	}
}

// supervise restarts the pipeline if it exited without being asked to, as
// a process supervisor would, and counts it.
func (d *drillRun) supervise() error {
	select {
	case <-d.proc.Exited():
	default:
		return nil
	}
	d.exits++
	d.note("the pipeline exited on its own (exit code %d) at %.1fs and was restarted; log tail: %s",
		d.proc.ExitCode(), d.since(time.Now()), d.proc.tail())
	d.progress("restart", fmt.Sprintf("pipeline exited on its own (code %d); restarting", d.proc.ExitCode()))
	if d.exits > 20 {
		return fmt.Errorf("%w: %d times", errExitedEarly, d.exits)
	}
	time.Sleep(time.Second)
	return d.startPipeline()
}

// waitCaughtUp waits until the group has committed the whole input.
func (d *drillRun) waitCaughtUp(ctx context.Context) error {
	timeout := 3*time.Minute + time.Duration(len(d.records))*time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	total := int64(len(d.records))
	lastShown := time.Time{}
	for {
		if err := d.supervise(); err != nil {
			return err
		}
		s := d.probe.Last()
		if time.Since(lastShown) > time.Second {
			d.r.observe(Event{Scenario: d.name, Phase: "catch-up", Detail: "input committed", Done: int(s.Committed), Total: int(total)})
			lastShown = time.Now()
		}
		if s.Input == total && s.Committed == total {
			d.r.observe(Event{Scenario: d.name, Phase: "catch-up", Detail: "input committed", Done: int(total), Total: int(total)})
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the group committed %d of %d input records within %s: %w", s.Committed, total, timeout, ctx.Err())
		case <-time.After(probeInterval):
		}
	}
}

// execute runs the pipeline on d's input with sc's faults (none for a nil
// sc), stops it gracefully once the input is committed, and collects and
// accounts for what it wrote. Guarantees that broke go into res; an error
// means the run could not be carried out.
func (d *drillRun) execute(ctx context.Context, sc scenario, res *ScenarioResult) ([]position, *outcome, error) {
	r := d.r
	d.began = time.Now()
	if sc != nil {
		if err := sc.prepare(ctx, d); err != nil {
			return nil, nil, err
		}
	}
	if err := d.writeConfig(); err != nil {
		return nil, nil, err
	}
	if err := r.env.createTopics(ctx, r.cfg.Partitions, d.topic, d.dlq, d.output); err != nil {
		return nil, nil, err
	}
	d.probe = startProbe(r.env.adm, d.topic, d.output, d.group, d.began)
	defer func() { res.Samples = d.probe.Stop() }()

	// The reference gets its input at once; a scenario a tenth at once and
	// the rest spread over longer than its faults take, so that every
	// fault hits a pipeline busy with a live stream.
	warmup, span := len(d.records), time.Duration(0)
	if sc != nil {
		warmup = len(d.records) / 10
		span = max(15*time.Second, sc.expected(r.cfg)*13/10)
	}
	d.progress("start", fmt.Sprintf("producing %d records to %s (%s), pipeline: %s",
		len(d.records), d.topic, describeSpan(warmup, span), d.logPath))
	var err error
	if d.stream, err = startStream(ctx, r.env.kafka.Addrs(), d.topic, d.records, warmup, span); err != nil {
		return nil, nil, err
	}
	defer d.stream.Finish()
	if err := d.startPipeline(); err != nil {
		return nil, nil, err
	}
	defer func() {
		if d.proc != nil {
			select {
			case <-d.proc.Exited():
			default:
				_ = d.proc.Kill()
			}
		}
	}()
	if err := d.waitRecovered(ctx, d.began); err != nil {
		return nil, nil, fmt.Errorf("pipeline wrote no output after its start: %w; log tail: %s", err, d.proc.tail())
	}
	if sc != nil {
		d.progress("live", "pipeline writing output; injecting faults")
		if err := sc.inject(ctx, d); err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			res.breaks("%v", err)
		}
	}
	positions, err := d.stream.Wait(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := d.waitCaughtUp(ctx); err != nil {
		res.breaks("%v", err)
	}
	d.progress("stop", "input committed; stopping the pipeline with SIGTERM")
	code, err := d.proc.Stop(time.Minute)
	switch {
	case err != nil:
		res.breaks("graceful stop: %v", err)
	case code != 0:
		res.breaks("graceful stop: the pipeline exited with %d after SIGTERM, want 0; log tail: %s", code, d.proc.tail())
	}
	if d.exits > 0 {
		res.breaks("the pipeline exited on its own %d times and had to be restarted (see notes)", d.exits)
	}
	res.UnexpectedExits = d.exits
	res.Faults = d.faults
	res.Seconds = time.Since(d.began).Seconds()

	d.progress("verify", "reading ClickHouse, the output topic and the dead-letter topic")
	o, err := collectOutcome(ctx, r.env, d.database, d.topic, d.dlq, d.output)
	if err != nil {
		return nil, nil, err
	}
	a := account(d.records, positions, o)
	res.Produced, res.Valid, res.DeadLettered, res.Lost, res.Misrouted = a.produced, a.applied, a.deadLettered, a.lost, len(a.misrouted)
	if a.lost > 0 {
		res.breaks("%s", r.lostMessage(ctx, d.topic, a))
	}
	if a.applied+a.deadLettered != a.produced {
		res.breaks("valid %d + dead-lettered %d != produced %d", a.applied, a.deadLettered, a.produced)
	}
	if len(a.misrouted) > 0 {
		res.breaks("%d input records misrouted; first: %s", len(a.misrouted), strings.Join(first(a.misrouted, 5), "; "))
	}
	res.AbsorbedClickHouse = o.chRows - int64(len(o.chFinal))
	res.AbsorbedTopic = int64(len(o.topic) - len(o.topicNewest))
	res.RewritesClickHouse, res.RewritesTopic = o.chRewrites, o.topicRewrites
	res.Conflicts = len(o.chConflicts) + len(o.topicConflicts)
	if res.Conflicts > 0 {
		res.breaks("%d rewrites differ from the first write of the same user and version (an event applied twice, or output "+
			"that is not deterministic); first: %s", res.Conflicts, strings.Join(first(append(o.chConflicts, o.topicConflicts...), 3), "; "))
	}
	return positions, o, nil
}
