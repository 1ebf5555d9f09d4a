package benchmark

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/recstream/recstream/internal/embedded"
)

// Env is what Run needs from its caller besides the sizes.
type Env struct {
	// NewPipeline builds the whole pipeline. Required.
	NewPipeline PipelineFactory
	// Log receives the components' logs; nil means none.
	Log *zap.Logger
	// Progress, if set, is called with a line of text at each step and
	// after each repeat, so that a long run shows it is moving.
	Progress func(line string)
}

// run is one benchmark run in progress.
type run struct {
	cfg    Config
	env    Env
	log    *zap.Logger
	report *Report

	ch     *embedded.ClickHouseServer
	chConn driver.Conn // for the raw inserts and dropping databases
	broker *embedded.KafkaBroker
	admin  *kadm.Client
	data   *dataset

	step, steps int
	// scorerWork describes the session work the scorer's batches needed.
	scorerWork scorerWork
	// chCPU is the CPU cost per row of each ClickHouse writer (by row ID).
	chCPU map[string]cpuPerRow
	// pipelineRuns counts the whole-pipeline runs, to name their databases.
	pipelineRuns int
}

// stage is one step of a run, measured for its peak memory.
type stage struct {
	name string
	fn   func(ctx context.Context) error
}

// Run measures every stage against its ceiling (see the package
// documentation) and returns the report. It wipes cfg.DataDir, starts a
// ClickHouse server and an in-process Kafka broker with their data there,
// and stops both before it returns. cfg is completed with WithDefaults.
//
// A failed stage stops the run: the error names the stage, and the report
// holds what was measured before it.
func Run(ctx context.Context, cfg Config, env Env) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("benchmark config: %w", err)
	}
	if env.NewPipeline == nil {
		return nil, errors.New("benchmark: no pipeline factory")
	}
	cfg = cfg.WithDefaults()
	if env.Log == nil {
		env.Log = zap.NewNop()
	}
	r := &run{cfg: cfg, env: env, log: env.Log, chCPU: map[string]cpuPerRow{},
		report: &Report{Config: cfg, Started: time.Now().UTC()}}
	r.report.Machine = Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadAverage()}
	defer func() {
		r.report.Machine.LoadAfter = loadAverage()
		r.report.Seconds = time.Since(r.report.Started).Seconds()
	}()
	if err := clearDataDir(cfg.DataDir); err != nil {
		return r.report, err
	}
	defer r.stop()

	stages := []stage{
		{"set-up: servers, data set, model", r.start},
		{"produce: raw producers", r.measureProduce},
		{"consume: raw consumers, consumers.Consumer", r.measureConsume},
		{"score: raw ONNX Runtime, scorers.Scorer, plain Go loop", r.measureScore},
		{"ClickHouse: sink, raw inserts", r.measureClickHouse},
		{"Kafka output: sink, raw produce", r.measureKafkaOutput},
		{"whole pipeline", func(ctx context.Context) error {
			// The held batches are no longer needed; the pipeline's memory
			// is measured without them.
			r.data.releaseBatches()
			return r.measurePipeline(ctx)
		}},
		{"scorer state per user", func(context.Context) error {
			v, err := stateBytesPerUser(cfg.Dim, cfg.StateUsers)
			r.report.Resources = Resources{StateBytesPerUser: v, StateUsers: cfg.StateUsers, StateDim: cfg.Dim,
				Stages: r.report.Resources.Stages}
			return err
		}},
	}
	r.steps = len(stages)
	profiles := stageProfiler{dir: cfg.ProfileDir}
	for _, s := range stages {
		r.step++
		resetPeakRSS()
		stall0, stallOK := ioStall()
		start := time.Now()
		stop, err := profiles.start(r.step, s.name)
		if err != nil {
			return r.report, err
		}
		err = s.fn(ctx)
		if perr := stop(); err == nil && perr != nil {
			err = perr
		}
		if err != nil {
			return r.report, fmt.Errorf("benchmark %s: %w", s.name, err)
		}
		res := StageResources{Stage: s.name, PeakRSSBytes: peakRSS(), LoadAverage: loadAverage(), IOPressure: -1}
		if stall1, ok := ioStall(); ok && stallOK {
			res.IOPressure = (stall1 - stall0).Seconds() / time.Since(start).Seconds()
		}
		if pid := r.clickHousePID(); pid > 0 {
			res.ClickHouseRSSBytes = statusBytes(strconv.Itoa(pid), "VmRSS")
		}
		r.report.Resources.Stages = append(r.report.Resources.Stages, res)
	}
	r.report.Goals = evaluateGoals(r.report, r.scorerWork, r.chCPU)
	return r.report, nil
}

// start starts the servers and builds the data set.
func (r *run) start(ctx context.Context) error {
	r.progress("starting ClickHouse and the in-process Kafka broker (data in %s)", r.cfg.DataDir)
	var err error
	r.ch, err = embedded.StartClickHouse(ctx, filepath.Join(r.cfg.DataDir, "clickhouse"), r.log.Named("clickhouse-server"))
	if err != nil {
		return err
	}
	r.chConn, err = clickhouse.Open(&clickhouse.Options{Addr: []string{r.ch.Addr()},
		Auth: clickhouse.Auth{Database: "default", Username: "default"}})
	if err != nil {
		return fmt.Errorf("connect to clickhouse: %w", err)
	}
	r.broker, err = embedded.StartKafka(embedded.KafkaConfig{DataDir: filepath.Join(r.cfg.DataDir, "kafka"),
		Partitions: r.cfg.Partitions, Topics: []string{InputTopic, DeadLetterTopic}})
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers()...))
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	r.admin = kadm.NewClient(cl)
	r.progress("generating %d records (%d users, %d items) and a model (%d items, D=%d)",
		r.cfg.Events, r.cfg.Users, r.cfg.Items, r.cfg.Items, r.cfg.Dim)
	if r.data, err = newDataset(r.cfg, r.cfg.DataDir); err != nil {
		return err
	}
	r.report.Data = DataSummary{Records: len(r.data.records), Bytes: r.data.bytes, ValidEvents: r.data.valid()}
	return r.produceInput(ctx)
}

// stop releases everything start started.
func (r *run) stop() {
	if r.data != nil {
		r.data.releaseBatches()
	}
	if r.admin != nil {
		r.admin.Close()
	}
	if r.chConn != nil {
		r.chConn.Close()
	}
	if r.broker != nil {
		r.broker.Close()
	}
	if r.ch != nil {
		if err := r.ch.Stop(); err != nil {
			r.log.Warn("stop clickhouse server", zap.Error(err))
		}
	}
}

func (r *run) brokers() []string { return r.broker.Addrs() }

func (r *run) clickHousePID() int {
	if r.ch == nil {
		return 0
	}
	return r.ch.PID()
}

// timeout bounds an operation over n records: generous, so that only a
// stall ends it (it assumes at least 2,000 records per second).
func (r *run) timeout(n int) time.Duration {
	return time.Minute + time.Duration(n/2000)*time.Second
}

// quiesce waits, up to 10 s, until the ClickHouse server is idle (below a
// fifth of a core over a quarter second): done merging the parts earlier
// inserts left, so that they do not weigh on the next measurement.
func (r *run) quiesce(ctx context.Context) {
	pid := r.clickHousePID()
	if pid <= 0 {
		return
	}
	const window = 250 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		before := pidCPU(pid)
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		if (pidCPU(pid) - before).Seconds() < 0.2*window.Seconds() {
			return
		}
	}
	r.log.Warn("clickhouse still busy after 10 s; measuring anyway")
}

// dropDatabase drops a ClickHouse database the run wrote; a failure is
// only logged.
func (r *run) dropDatabase(ctx context.Context, db string) {
	if err := r.chConn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		r.log.Warn("drop benchmark database", zap.String("database", db), zap.Error(err))
	}
}

// createTopic creates a scratch topic.
func (r *run) createTopic(ctx context.Context, topic string, partitions int) error {
	resp, err := r.admin.CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// deleteTopic deletes a scratch topic, so that the broker's disk does not
// fill with copies of the data set; a failure is only logged.
func (r *run) deleteTopic(ctx context.Context, topic string) {
	if _, err := r.admin.DeleteTopic(ctx, topic); err != nil {
		r.log.Warn("delete scratch topic", zap.String("topic", topic), zap.Error(err))
	}
}

// progress reports a step.
func (r *run) progress(format string, args ...any) {
	if r.env.Progress != nil {
		r.env.Progress(fmt.Sprintf("[%d/%d] ", r.step, r.steps) + fmt.Sprintf(format, args...))
	}
}

// progressRepeat reports one repeat's figure.
func (r *run) progressRepeat(what string, rep int, v float64, unit string) {
	r.progress("%s: repeat %d/%d: %s %s", what, rep+1, r.cfg.Repeats, human(v), unit)
}

// repeatProgress returns a measure callback reporting each repeat.
func (r *run) repeatProgress(what, unit string) func(rep int, v float64) {
	return func(rep int, v float64) { r.progressRepeat(what, rep, v, unit) }
}

// loadAverage is the 1-minute load average (0 when unknown).
func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(raw), " ")
	v, _ := strconv.ParseFloat(first, 64)
	return v
}

// dataDirEntries are what a benchmark run writes into its data directory.
var dataDirEntries = map[string]bool{"clickhouse": true, "kafka": true, "model": true}

// clearDataDir wipes dir, refusing to when it holds anything a benchmark
// run did not write there (a mistyped --data-dir must not delete a
// checkout).
func clearDataDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read benchmark data dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if !dataDirEntries[e.Name()] && !strings.HasPrefix(e.Name(), ".model.tmp-") {
			return fmt.Errorf("data_dir: %s holds %q, which a benchmark run did not write: choose a new or empty directory (it is wiped)", dir, e.Name())
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear benchmark data dir %s: %w", dir, err)
	}
	return nil
}
