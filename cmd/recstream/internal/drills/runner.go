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
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
)

// Event is a step of a running drill, for progress display.
type Event struct {
	// Scenario is "setup", "reference" or a scenario's name.
	Scenario string
	// Phase is a short name of the step ("start", "fault", "recovered",
	// "catch-up", "verify", "done").
	Phase string
	// Detail says what happens, for a person.
	Detail string
	// Done and Total measure progress through a long step (input records
	// committed of those produced); both 0 when the step has no measure.
	Done, Total int
}

// Observer receives the drill's progress; it is called from the drill's
// goroutine and must not block for long. Nil means none.
type Observer func(Event)

// scenario is one kind of fault drill.
type scenario interface {
	name() string
	// describe says in one sentence what the scenario does and checks.
	describe(Config) string
	// expected is about how long inject takes, so that the input stream
	// lasts longer: faults then hit a pipeline that is busy.
	expected(Config) time.Duration
	// poison is how many hostile records the input carries (a burst in its
	// middle); 0 for the plain input.
	poison(Config) int
	// prepare adjusts the pipeline's configuration before it is written
	// and readies what the scenario needs before the pipeline starts.
	prepare(ctx context.Context, d *drillRun) error
	// inject runs the faults against the running pipeline and records
	// each with d.fault.
	inject(ctx context.Context, d *drillRun) error
	// check adds the scenario's own guarantees to res once the run is
	// over, o holds what it wrote and res the common guarantees.
	check(ctx context.Context, d *drillRun, o *outcome, res *ScenarioResult) error
}

func newScenario(name string) scenario {
	switch name {
	case ScenarioKill9:
		return kill9Scenario{}
	case ScenarioBrokerLoss:
		return brokerLossScenario{}
	case ScenarioBrokerRestart:
		return brokerRestartScenario{}
	case ScenarioClickHouseOutage:
		return clickHouseOutageScenario{}
	case ScenarioPoisonBurst:
		return poisonBurstScenario{}
	case ScenarioCorruptCheckpoint:
		return &corruptCheckpointScenario{}
	case ScenarioModelRollback:
		return &modelRollbackScenario{}
	}
	return nil
}

// Runner runs one drill.
type Runner struct {
	cfg     Config
	log     *zap.Logger
	observe Observer
	env     *environment

	// reference run's input positions and outcome, once it ran.
	refPositions []position
	ref          *outcome
}

// New checks cfg and returns a runner. A nil log means zap.NewNop().
func New(cfg Config, log *zap.Logger, observe Observer) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("drill config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if observe == nil {
		observe = func(Event) {}
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("drill config: binary: %w", err)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("drill config: binary: %s is not an executable file", bin)
	}
	cfg.Binary = bin
	if cfg.WorkDir, err = filepath.Abs(cfg.WorkDir); err != nil {
		return nil, fmt.Errorf("drill config: work_dir: %w", err)
	}
	return &Runner{cfg: cfg, log: log, observe: observe}, nil
}

// Run starts the cluster and the server, trains the model, runs the
// reference and then every scenario, and returns the report. An error means
// the drill itself could not run (a component did not start); a broken
// guarantee is not an error, it is in the report (Passed false, Broken).
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	began := time.Now()
	rep := &Report{Started: began, Settings: settingsOf(r.cfg)}
	note := func(s string) { r.observe(Event{Scenario: "setup", Phase: "start", Detail: s}) }
	env, err := startEnvironment(ctx, r.cfg, r.log, note)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	r.env = env
	if r.cfg.Contention > 0 {
		note(fmt.Sprintf("keeping %d of %d cores busy beside the pipeline", r.cfg.Contention, runtime.NumCPU()))
	}
	defer startContention(r.cfg.Contention)()
	rep.Cluster = ClusterInfo{KafkaBrokers: clusterBrokers, KafkaAddrs: env.kafka.Addrs(), ReplicationFactor: replicationFactor,
		MinInsyncReplicas: minInsyncReplicas, ClickHouseAddr: env.ch.Addr(), ModelV1: env.v1, ModelV2: env.v2}

	rep.Reference, err = r.runReference(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range rep.Reference.Broken {
		rep.Broken = append(rep.Broken, "reference: "+b)
	}
	for _, name := range r.cfg.ordered() {
		res, err := r.runScenario(ctx, newScenario(name))
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		for _, b := range res.Broken {
			rep.Broken = append(rep.Broken, name+": "+b)
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	rep.Passed = len(rep.Broken) == 0
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// drillRun is one run of the pipeline on its own topics, group, database
// and checkpoints: the reference or a scenario.
type drillRun struct {
	r     *Runner
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

// runReference runs the pipeline once on the whole input with no fault and
// keeps what it wrote: every scenario is compared with it.
func (r *Runner) runReference(ctx context.Context) (ScenarioResult, error) {
	d, err := r.newRun("reference", 0)
	if err != nil {
		return ScenarioResult{}, err
	}
	res := ScenarioResult{Name: "reference", Description: "the same input and model, no fault"}
	positions, o, err := d.execute(ctx, nil, &res)
	if err != nil {
		return res, fmt.Errorf("reference run: %w", err)
	}
	r.refPositions, r.ref = positions, o
	res.Compared = len(o.chFinal)
	if len(o.chFinal) != len(o.topicNewest) {
		res.breaks("ClickHouse holds %d users, the output topic %d", len(o.chFinal), len(o.topicNewest))
	}
	res.finish()
	d.progress("done", fmt.Sprintf("%d users with recommendations, %d output records", len(o.chFinal), len(o.topic)))
	return res, nil
}

// runScenario runs sc and checks every guarantee against the reference.
func (r *Runner) runScenario(ctx context.Context, sc scenario) (ScenarioResult, error) {
	d, err := r.newRun(sc.name(), sc.poison(r.cfg))
	if err != nil {
		return ScenarioResult{}, err
	}
	res := ScenarioResult{Name: sc.name(), Description: sc.describe(r.cfg)}
	positions, o, err := d.execute(ctx, sc, &res)
	if err != nil {
		return res, err
	}
	d.progress("verify", "comparing with the reference run")
	m, err := newOffsetMap(d.records, positions, r.refPositions)
	if err != nil {
		return res, err
	}
	var include func(string) bool
	if f, ok := sc.(interface {
		comparable(d *drillRun, o *outcome, m offsetMap, res *ScenarioResult) func(string) bool
	}); ok {
		include = f.comparable(d, o, m, &res)
	}
	c := compareFinal(r.ref, o, m, include)
	res.Compared, res.Differing, res.DifferingClickHouse, res.DifferingTopic = c.compared, c.eitherDiffer, c.clickhouse, c.topic
	if c.eitherDiffer > 0 {
		res.breaks("%d of %d users' final recommendations differ from the reference (ClickHouse %d, output topic %d); first:\n%s",
			c.eitherDiffer, c.compared, c.clickhouse, c.topic, strings.Join(c.examples, "\n"))
	}
	if err := sc.check(ctx, d, o, &res); err != nil {
		return res, err
	}
	res.Notes = append(res.Notes, d.notes...)
	res.finish()
	verdict := "every guarantee held"
	if !res.Passed {
		verdict = fmt.Sprintf("%d guarantees BROKEN", len(res.Broken))
	}
	d.progress("done", fmt.Sprintf("lost %d, differing %d, rewrites absorbed %d/%d, RTO %s: %s",
		res.Lost, res.Differing, res.RewritesClickHouse, res.RewritesTopic, seconds(res.RTOSeconds), verdict))
	return res, nil
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

// lostMessage says how many input records were lost, where they are, and
// how many of them the broker itself deleted before they were read (below
// their partition's log start offset): that cause lies outside recstream.
func (r *Runner) lostMessage(ctx context.Context, topic string, a accounting) string {
	starts := map[int32]int64{}
	listed, err := r.env.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		listed.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				starts[o.Partition] = o.Offset
			}
		})
	}
	ranges, deleted := a.lostRanges(starts)
	msg := fmt.Sprintf("%d input records lost: neither in ClickHouse events FINAL nor dead-lettered (%s)", a.lost, ranges)
	switch {
	case err != nil:
		msg += fmt.Sprintf("; the input's log start offsets could not be listed: %v", err)
	case deleted > 0:
		msg += fmt.Sprintf("; %d of them lie below their partition's log start offset %v: the broker deleted them "+
			"(retention) before they were read", deleted, starts)
	}
	return msg
}

// nameSeed derives a scenario's random stream from its name.
func nameSeed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func describeSpan(warmup int, span time.Duration) string {
	if span == 0 {
		return "all at once"
	}
	return fmt.Sprintf("%d at once, the rest over %s", warmup, span.Round(time.Second))
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
