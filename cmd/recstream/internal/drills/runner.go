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
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"

	"github.com/recstream/recstream/scorers"
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

	// refs are the fault-free runs the scenarios are compared with, by
	// scorer.recommender: the default's runs first, another's when a
	// scenario needs it.
	refs map[string]*reference
}

// reference is a fault-free run: its input positions and outcome.
type reference struct {
	positions []position
	out       *outcome
}

// recommenderOf is the scorer.recommender a scenario runs with: the
// default, unless the scenario says otherwise (model-rollback is about
// model versions).
func recommenderOf(sc scenario) string {
	if r, ok := sc.(interface{ recommender() string }); ok {
		return r.recommender()
	}
	return scorers.Config{}.WithDefaults().Recommender
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
	return &Runner{cfg: cfg, log: log, observe: observe, refs: map[string]*reference{}}, nil
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

	rep.Reference, err = r.runReference(ctx, recommenderOf(nil))
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

// runReference runs the pipeline once on the whole input with no fault,
// with the given recommender, and keeps what it wrote: every scenario of
// that recommender is compared with it.
func (r *Runner) runReference(ctx context.Context, recommender string) (ScenarioResult, error) {
	name := "reference"
	if recommender != recommenderOf(nil) {
		name += "-" + recommender
	}
	d, err := r.newRun(name, 0)
	if err != nil {
		return ScenarioResult{}, err
	}
	d.pcfg.Scorer.Recommender = recommender
	res := ScenarioResult{Name: name, Description: "the same input and model, no fault, recommender " + recommender}
	positions, o, err := d.execute(ctx, nil, &res)
	if err != nil {
		return res, fmt.Errorf("%s run: %w", name, err)
	}
	r.refs[recommender] = &reference{positions: positions, out: o}
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
	rec := recommenderOf(sc)
	if r.refs[rec] == nil {
		refRes, err := r.runReference(ctx, rec)
		if err != nil {
			return res, err
		}
		for _, b := range refRes.Broken {
			res.breaks("%s: %s", refRes.Name, b)
		}
		res.note("compared with a reference run of its own, recommender %s", rec)
	}
	d.ref = r.refs[rec]
	positions, o, err := d.execute(ctx, sc, &res)
	if err != nil {
		return res, err
	}
	d.progress("verify", "comparing with the reference run")
	m, err := newOffsetMap(d.records, positions, d.ref.positions)
	if err != nil {
		return res, err
	}
	var include func(string) bool
	if f, ok := sc.(interface {
		comparable(d *drillRun, o *outcome, m offsetMap, res *ScenarioResult) func(string) bool
	}); ok {
		include = f.comparable(d, o, m, &res)
	}
	c := compareFinal(d.ref.out, o, m, include)
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
