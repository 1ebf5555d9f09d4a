package drills

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recstream/recstream/scorers"
)

// modelRollbackScenario serves the model from a registry (scorer.models_dir,
// CURRENT naming v1), activates v2 a third of the way into the stream, and
// rolls back to v1 two thirds of the way in, each time as an operator
// would: recstream models activate, which checks the version and rewrites
// CURRENT; the running pipeline watches CURRENT and swaps the version in
// between two batches, keeping every user's state.
//
// A switch happens at a batch boundary that depends on timing, and the
// users active while v2 served keep a state v2 updated, so the live result
// cannot equal a fixed reference for every user. What must hold, and is
// checked:
//
//  1. Nothing is lost and nothing applied twice: every input record is
//     applied or dead-lettered, and every rewrite of a (user, version) is
//     identical (as in every scenario).
//  2. Every record carries the model that scored it, and the switches are
//     clean: in each input partition, in input order, the records' model
//     versions read v1…, then v2…, then v1… — never a mix within a stretch,
//     never a third version — and both switches took effect.
//  3. Nothing before the switch changed: every output record that reflects
//     an input position before the switch to v2 (in its partition) is
//     byte-identical to the reference's record of the same user and
//     version, where the reference has one (batch boundaries differ between
//     runs, so not every pair exists in both); and users whose every event
//     came before the switch have final recommendations identical to the
//     reference's, in both sinks.
//  4. Every other user's final record names the model serving at its input
//     position (v1 after the rollback, v2 within the v2 stretch), and
//     ClickHouse FINAL and the output topic agree on it byte for byte.
//  5. The documented way to erase v2's influence works: after the rollback
//     an input replay (recstream replay: fresh state, v1, every sink)
//     leaves final recommendations identical to the v1 reference for every
//     user, in both sinks. The rewrites carry the same versions as the rows
//     they replace; ClickHouse keeps the last row written among equal
//     versions and compaction the last record. This is what the table's
//     differing column counts for this scenario.
type modelRollbackScenario struct {
	// switches are the first input offsets, per input partition, scored by
	// v2 and then by v1 again; filled by comparable from the output.
	toV2, backToV1 map[int32]int64
}

func (*modelRollbackScenario) name() string { return ScenarioModelRollback }

// recommender: the drill is about model versions, so the model fills the
// records, here and in the reference it is compared with.
func (*modelRollbackScenario) recommender() string { return scorers.RecommenderModel }

func (*modelRollbackScenario) describe(Config) string {
	return "model v2 activated mid-stream (recstream models activate), then rolled back to v1: clean switches at " +
		"batch boundaries, every record names its model, records before the switch equal the v1 reference's, nothing " +
		"lost or applied twice; a replay with v1 afterwards gives exactly the v1 reference"
}

func (*modelRollbackScenario) expected(Config) time.Duration { return 20 * time.Second }

func (*modelRollbackScenario) poison(Config) int { return 0 }

// modelReloadInterval is how often the drill's pipeline reads CURRENT.
const modelReloadInterval = 200 * time.Millisecond

// prepare serves the model from the registry, v1 current.
func (*modelRollbackScenario) prepare(ctx context.Context, d *drillRun) error {
	env := d.r.env
	d.pcfg.Scorer.ModelDir = ""
	d.pcfg.Scorer.ModelsDir = env.modelsDir
	// The drill is about model versions: the model fills the records.
	d.pcfg.Scorer.Recommender = scorers.RecommenderModel
	d.pcfg.Scorer.ReloadInterval = modelReloadInterval
	if err := activate(ctx, d, env.v1); err != nil {
		return fmt.Errorf("make model v1 current: %w", err)
	}
	return nil
}

// activate makes version current as an operator does: recstream models
// activate, which checks the version's graph and rewrites CURRENT
// atomically.
func activate(ctx context.Context, d *drillRun, version string) error {
	return runToCompletion(ctx, d.r.cfg.Binary, d.logPath, "models", "activate", version, "--dir", d.r.env.modelsDir)
}

// logSwapped is what the scorer logs when a new version serves.
const logSwapped = "model version swapped in"

func (*modelRollbackScenario) inject(ctx context.Context, d *drillRun) error {
	env := d.r.env
	for _, step := range []struct {
		at      int // input records produced before the switch
		version string
		kind    string
	}{
		{len(d.records) / 3, env.v2, "switch to model v2"},
		{len(d.records) * 2 / 3, env.v1, "roll back to model v1"},
	} {
		if err := d.stream.WaitProduced(ctx, step.at); err != nil {
			return err
		}
		start := time.Now()
		if err := activate(ctx, d, step.version); err != nil {
			return fmt.Errorf("%s: %w", step.kind, err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		l, err := d.proc.WaitLog(waitCtx, logSwapped, func(l logLine) bool { return l.To == step.version })
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", step.kind, err)
		}
		// The swap is timed by the pipeline's own log line; recovery is
		// the first output after it, written by the new version.
		swapped := l.At(time.Now())
		d.fault(step.kind, fmt.Sprintf("CURRENT → %s, swapped in after %s", step.version, swapped.Sub(start).Round(10*time.Millisecond)), start, swapped)
		d.faults[len(d.faults)-1].afterRepair = true
		if err := d.waitRecovered(ctx, swapped); err != nil {
			return err
		}
	}
	return nil
}

// comparable finds the switch points in the output and returns which users
// must equal the reference: those whose final reference record comes
// before the switch to v2 in their partition.
func (sc *modelRollbackScenario) comparable(d *drillRun, o *outcome, m offsetMap, _ *ScenarioResult) func(string) bool {
	v1, v2 := d.r.env.v1, d.r.env.v2
	sc.toV2, sc.backToV1 = map[int32]int64{}, map[int32]int64{}
	for _, p := range byInputPartition(o) {
		for _, r := range p.recs {
			if r.ModelVersion == v2 {
				if _, ok := sc.toV2[r.Partition]; !ok {
					sc.toV2[r.Partition] = r.Offset
				}
			} else if _, ok := sc.toV2[r.Partition]; ok && r.ModelVersion == v1 {
				if _, ok := sc.backToV1[r.Partition]; !ok {
					sc.backToV1[r.Partition] = r.Offset
				}
			}
		}
	}
	ref := d.ref.out
	return func(user string) bool {
		rr, ok := ref.topicNewest[user]
		if !ok {
			return true // a user only the drill has: compare, and differ
		}
		switchAt, switched := sc.toV2[rr.rec.Partition]
		return !switched || int64(rr.rec.Version) < switchAt
	}
}

// partitionRecs are one input partition's output records in input order.
type partitionRecs struct {
	partition int32
	recs      []recordModel
}

type recordModel struct {
	Partition    int32
	Offset       int64
	ModelVersion string
}

// byInputPartition groups the output records by the input partition they
// reflect, each group in input order.
func byInputPartition(o *outcome) []partitionRecs {
	by := map[int32][]recordModel{}
	for _, t := range o.topic {
		by[t.rec.Partition] = append(by[t.rec.Partition], recordModel{t.rec.Partition, t.rec.Offset, t.rec.ModelVersion})
	}
	var out []partitionRecs
	for p, recs := range by {
		slices.SortStableFunc(recs, func(a, b recordModel) int { return cmp.Compare(a.Offset, b.Offset) })
		out = append(out, partitionRecs{p, recs})
	}
	slices.SortFunc(out, func(a, b partitionRecs) int { return cmp.Compare(a.partition, b.partition) })
	return out
}

func (sc *modelRollbackScenario) check(ctx context.Context, d *drillRun, o *outcome, res *ScenarioResult) error {
	v1, v2 := d.r.env.v1, d.r.env.v2
	if sc.toV2 == nil {
		return nil // comparable did not run: the run failed before
	}
	var scoredV2 int
	for _, p := range byInputPartition(o) {
		var runs []string
		for _, r := range p.recs {
			if r.ModelVersion != v1 && r.ModelVersion != v2 {
				res.breaks("output record %d@%d names model %q, neither v1 %s nor v2 %s", r.Partition, r.Offset, r.ModelVersion, v1, v2)
				return nil
			}
			if r.ModelVersion == v2 {
				scoredV2++
			}
			if len(runs) == 0 || runs[len(runs)-1] != r.ModelVersion {
				runs = append(runs, r.ModelVersion)
			}
		}
		if !cleanSwitches(runs, v1, v2) {
			res.breaks("input partition %d: model versions in input order go %s, want v1, v2, v1 (each once at most)",
				p.partition, strings.Join(runs, " → "))
		}
	}
	if scoredV2 == 0 {
		res.breaks("no output record was scored by v2 %s: the switch never took effect", v2)
	}
	if len(sc.backToV1) == 0 {
		res.breaks("no output record after the v2 stretch was scored by v1 %s: the rollback never took effect", v1)
	}
	// Records before the switch: the same as the reference's.
	type kv struct {
		user    string
		version uint64
	}
	refRecs := map[kv][]byte{}
	for _, t := range d.ref.out.topic {
		refRecs[kv{t.rec.UserID, t.rec.Version}] = t.raw
	}
	var before, matched, changed int
	for _, t := range o.topic {
		if at, ok := sc.toV2[t.rec.Partition]; ok && t.rec.Offset >= at {
			continue
		}
		before++
		want, ok := refRecs[kv{t.rec.UserID, t.rec.Version}]
		if !ok {
			continue
		}
		matched++
		if !bytes.Equal(want, t.raw) {
			changed++
		}
	}
	if changed > 0 {
		res.breaks("%d of %d output records from before the switch differ from the reference's records of the same user and version",
			changed, matched)
	}
	if matched == 0 {
		res.breaks("none of the %d output records from before the switch has a counterpart in the reference: nothing was compared", before)
	}
	res.note("%d output records reflect input before the switch to v2; %d of them have a reference record of the same user "+
		"and version, and %d differ", before, matched, changed)
	// Users past the switch: their final record names the model serving at
	// its position, and both sinks agree.
	var touched, wrongModel, disagree int
	for u, t := range o.topicNewest {
		switchAt, switched := sc.toV2[t.rec.Partition]
		if !switched || t.rec.Offset < switchAt {
			continue
		}
		touched++
		want := v2
		if back, ok := sc.backToV1[t.rec.Partition]; ok && t.rec.Offset >= back {
			want = v1
		}
		if t.rec.ModelVersion != want {
			wrongModel++
		}
		ch, ok := o.chFinal[u]
		if !ok || renderRec(ch) != renderRec(secondsPrecision(t.rec)) {
			disagree++
		}
	}
	if wrongModel > 0 {
		res.breaks("%d users' final records name a model other than the one serving at their input position", wrongModel)
	}
	if disagree > 0 {
		res.breaks("%d users active since the switch have different final recommendations in ClickHouse and the output topic", disagree)
	}
	res.note("%d output records were scored by v2 %s; %d users untouched since the switch were compared with the v1 "+
		"reference (%d differ), %d users active since the switch were checked for their model and for agreement of both sinks",
		scoredV2, v2, res.Compared, res.Differing, touched)
	return sc.replayAndCompare(ctx, d, res)
}

// replayAndCompare rebuilds both sinks by an input replay with v1 and
// compares every user with the reference.
func (*modelRollbackScenario) replayAndCompare(ctx context.Context, d *drillRun, res *ScenarioResult) error {
	d.progress("rebuild", "replaying the input with v1 to erase v2's influence (recstream replay)")
	began := time.Now()
	if err := runToCompletion(ctx, d.r.cfg.Binary, d.logPath, "replay", "--config", d.cfgPath); err != nil {
		res.breaks("replay after the rollback: %v", err)
		return nil
	}
	o, err := collectOutcome(ctx, d.r.env, d.database, d.topic, d.dlq, d.output)
	if err != nil {
		return err
	}
	c := compareFinal(d.ref.out, o, offsetMap{identity: true}, nil)
	res.Compared, res.Differing, res.DifferingClickHouse, res.DifferingTopic = c.compared, c.eitherDiffer, c.clickhouse, c.topic
	if c.eitherDiffer > 0 {
		res.breaks("after the replay with v1, %d of %d users' final recommendations differ from the v1 reference "+
			"(ClickHouse %d, output topic %d); first:\n%s", c.eitherDiffer, c.compared, c.clickhouse, c.topic, strings.Join(c.examples, "\n"))
	}
	res.note("the replay with v1 took %s; afterwards %d of %d users differ from the v1 reference",
		time.Since(began).Round(100*time.Millisecond), c.eitherDiffer, c.compared)
	return nil
}

// cleanSwitches reports whether runs (the model versions of a partition in
// input order, consecutive repeats collapsed) is a prefix-free walk
// v1 → v2 → v1 that may start late or end early.
func cleanSwitches(runs []string, v1, v2 string) bool {
	want := []string{v1, v2, v1}
	for start := 0; start < len(want); start++ {
		if len(runs) <= len(want)-start && slices.Equal(runs, want[start:start+len(runs)]) {
			return true
		}
	}
	return len(runs) == 0
}
