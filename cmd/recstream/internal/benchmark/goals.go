package benchmark

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/recstream/recstream/consumers"
)

// The project's performance goals.
const (
	// GoalPipelineShare: the whole pipeline, scoring on, reaches this share
	// of the raw consume ceiling.
	GoalPipelineShare = 0.80
	// GoalScorerShare: the scorer reaches this share of raw ONNX Runtime
	// session runs.
	GoalScorerShare = 0.50
	// GoalClickHouseShare: the ClickHouse sink reaches this share of a raw
	// clickhouse-go insert of the same rows.
	GoalClickHouseShare = 0.70
	// GoalP99Ms: the p99 event-to-recommendation latency at half of the
	// maximum throughput, in milliseconds.
	GoalP99Ms = 250.0
)

// evaluateGoals checks the report against the goals and says, for each,
// what limits the stage.
func evaluateGoals(rep *Report, work scorerWork, chCPU map[string]cpuPerRow) []Goal {
	return []Goal{
		pipelineGoal(rep),
		scorerGoal(rep, work),
		clickHouseGoal(rep, chCPU),
		latencyGoal(rep),
	}
}

// shareGoal fills a goal of the form "row >= share of its ceiling".
func shareGoal(rep *Report, name, id string, share float64, what string) (Goal, *Row, *Row) {
	g := Goal{Name: name, Target: fmt.Sprintf(">= %.0f%% of %s", share*100, what)}
	row := rep.Row(id)
	if row == nil || !row.Value.Valid() {
		g.Measured = "not measured"
		g.Limit = "the stage was not measured"
		return g, nil, nil
	}
	c := rep.Row(row.Against)
	if c == nil || !c.Value.Valid() || c.Value.Median <= 0 {
		g.Measured = fmt.Sprintf("%s %s, no ceiling measured", human(row.Value.Median), row.Unit)
		g.Limit = "the ceiling was not measured"
		return g, row, nil
	}
	g.Pass = row.Ratio >= share
	g.Measured = fmt.Sprintf("%.0f%%: %s of %s %s (%s)", row.Ratio*100, human(row.Value.Median), human(c.Value.Median),
		row.Unit, strings.TrimPrefix(c.Name, "raw "))
	return g, row, c
}

// pipelineGoal: the whole pipeline against the raw consume ceiling. Its
// limit is the stage that takes most of its busy time, and the CPU.
func pipelineGoal(rep *Report) Goal {
	g, row, ceiling := shareGoal(rep, "whole pipeline throughput", "pipeline.max", GoalPipelineShare,
		"the raw consume ceiling, scoring on")
	if row == nil || ceiling == nil {
		return g
	}
	b := rep.Breakdown
	var parts []string
	type part struct {
		what  string
		share float64
		alone string
	}
	stages := []part{{"scoring", b.ScoreShare, aloneRate(rep, "score.scorer.events", 1)}}
	for _, name := range slices.Sorted(maps.Keys(b.SinkShare)) {
		p := part{what: "the " + name + " sink", share: b.SinkShare[name]}
		switch name {
		case "clickhouse":
			p.alone = aloneRate(rep, "clickhouse.sink", rowsPerEvent(rep))
		case "kafka":
			p.alone = aloneRate(rep, "kafka-output.sink", recsPerEvent(rep))
		}
		stages = append(stages, p)
	}
	top := slices.MaxFunc(stages, func(a, b part) int {
		switch {
		case a.share < b.share:
			return -1
		case a.share > b.share:
			return 1
		}
		return 0
	})
	consumer := aloneRate(rep, "consume.consumer", 1)
	if top.share < 0.5 {
		parts = append(parts, fmt.Sprintf("input: scoring and the sinks are idle half the time or more (score %.0f%%, write %.0f%% of the busy time), "+
			"so batches arrive slower than they are processed; the consumer (fetch + decode + Arrow) alone runs at %s",
			b.ScoreShare*100, b.WriteShare*100, consumer))
	} else {
		s := fmt.Sprintf("%s: %.0f%% of the busy time", top.what, top.share*100)
		if in := b.BusySeconds * top.share; in > 0 && rep.Data.Records > 0 {
			s += fmt.Sprintf(", %s events/s while in the pipeline", human(float64(rep.Data.Records)/in))
		}
		if top.alone != "" {
			s += fmt.Sprintf(" (alone it runs at %s)", top.alone)
		}
		parts = append(parts, s+fmt.Sprintf("; the stages overlap (score %.0f%%, write %.0f%%), the consumer alone runs at %s",
			b.ScoreShare*100, b.WriteShare*100, consumer))
	}
	parts = append(parts, cpuNote(rep, row))
	g.Limit = strings.Join(parts, "; ")
	return g
}

// scorerGoal: the model path of the scorer (the row score.model; a report
// without one, score.scorer) against raw session runs. Its limit is the
// share of its time the session runs take, given the rows its batches
// needed. The default retrieval recommender runs no model: its row is
// compared with the model path's instead.
func scorerGoal(rep *Report, work scorerWork) Goal {
	id := "score.model"
	if rep.Row(id) == nil {
		id = "score.scorer"
	}
	g, row, ceiling := shareGoal(rep, "scorer throughput (recommender: model)", id, GoalScorerShare,
		"raw ONNX Runtime session.Run at the scorer's run size")
	if row == nil || ceiling == nil || work.seconds <= 0 || work.refreshes == 0 {
		return g
	}
	// The ceiling's time for the rows the batches needed: what the scorer
	// would take if it did nothing but run the session.
	session := float64(work.rows) / ceiling.Value.Median
	share := session / work.seconds
	if share > 1.05 {
		g.Limit = fmt.Sprintf("ONNX Runtime itself: the raw runs measured slower than the scorer's own (%d session rows would take %.2f s at the raw rate, "+
			"the scorer took %.2f s), so the machine's load changed between the measurements (see the others column)", work.rows, session, work.seconds)
		return g
	}
	var why []string
	why = append(why, fmt.Sprintf("ONNX Runtime runs explain about %.0f%% of Score's time (%d session rows for %d refreshes: "+
		"a user with more than %d events in a batch takes one row per %d; %d runs, %.1f users per run on average against %d in the ceiling)",
		share*100, work.rows, work.refreshes, 8, 8, work.runs, float64(work.rows)/float64(max(work.runs, 1)), work.batchUsers))
	why = append(why, fmt.Sprintf("the rest, about %.0f%%, is Go-side work per batch: grouping events by user, state gather and scatter, item look-ups, building the Arrow records",
		max(0, 100-share*100)))
	g.Limit = strings.Join(why, "; ")
	return g
}

// clickHouseGoal: the sink against the fastest raw insert of the same rows.
func clickHouseGoal(rep *Report, chCPU map[string]cpuPerRow) Goal {
	g, row, ceiling := shareGoal(rep, "ClickHouse sink throughput", "clickhouse.sink", GoalClickHouseShare,
		"a raw clickhouse-go insert of the same rows")
	if row == nil || ceiling == nil {
		return g
	}
	sink, raw := chCPU[row.ID], chCPU[ceiling.ID]
	if sink.client == 0 && raw.client == 0 {
		return g
	}
	g.Limit = fmt.Sprintf("client CPU %.2f s per million rows for the sink vs %.2f s for the raw insert; server CPU %.2f vs %.2f s",
		sink.client, raw.client, sink.server, raw.server)
	switch {
	case sink.client > raw.client*1.2:
		g.Limit = "the sink's own work (turning Arrow columns into driver values, item lists row by row): " + g.Limit
	case sink.server > raw.server*1.2:
		g.Limit = "the server takes longer on the sink's blocks: " + g.Limit
	default:
		g.Limit = "the server and the batch size (same rows, same inserts as the raw path; noisy on a busy machine): " + g.Limit
	}
	if io := stageIOPressure(rep, "ClickHouse"); io >= 0.1 {
		g.Limit += fmt.Sprintf("; the disk was contended (some task waited on I/O %.0f%% of the time)", io*100)
	}
	return g
}

// stageIOPressure is the I/O pressure of the first step whose name starts
// with prefix; -1 when unknown.
func stageIOPressure(rep *Report, prefix string) float64 {
	for _, s := range rep.Resources.Stages {
		if strings.HasPrefix(s.Stage, prefix) {
			return s.IOPressure
		}
	}
	return -1
}

// latencyGoal: p99 at half of the maximum throughput, with what it is made
// of.
func latencyGoal(rep *Report) Goal {
	g := Goal{Name: "event-to-recommendation latency", Target: fmt.Sprintf("p99 <= %.0f ms at 50%% of maximum throughput", GoalP99Ms)}
	var half *LatencyRow
	for i := range rep.Latency {
		if rep.Latency[i].Load == 0.5 {
			half = &rep.Latency[i]
		}
	}
	if half == nil || !half.P99.Valid() {
		g.Measured = "not measured"
		g.Limit = "the latency was not measured"
		return g
	}
	p99 := half.P99.Median
	g.Pass = p99 <= GoalP99Ms
	g.Measured = fmt.Sprintf("p99 %s ms at %s events/s (p50 %s, p95 %s ms)", human(p99), human(half.Rate),
		human(half.P50.Median), human(half.P95.Median))
	score, write := half.BatchScoreMs.Median, half.BatchWriteMs.Median
	perBatch := half.BatchRecords.Median
	if perBatch >= 0.9*consumers.DefaultBatchMaxRows {
		// Full batches under a load the pipeline should take easily: it
		// does not keep up live, and events queue in Kafka.
		g.Limit = fmt.Sprintf("the pipeline does not keep up at this rate live: batches are full (%s of %d records on average), so events queue in Kafka. "+
			"Live, a batch spends %.0f ms in the scorer and %.0f ms in the sinks",
			human(perBatch), consumers.DefaultBatchMaxRows, score, write)
		if b := rep.Breakdown; b.BatchScoreMs > 0 {
			g.Limit += fmt.Sprintf(", against %.0f ms and %.0f ms on the pre-filled topic at maximum throughput", b.BatchScoreMs, b.BatchWriteMs)
		}
		g.Limit += fmt.Sprintf(": the scorer shares the %d cores with ClickHouse (%.1f cores: inserts and their background merges), "+
			"the live producer and the broker", rep.Machine.CPUs, half.ClickHouseCores.Median)
		if o := half.OtherCores.Median; o >= 0.05 {
			g.Limit += fmt.Sprintf(", and other processes took %.1f cores", o)
		}
		return g
	}
	g.Limit = fmt.Sprintf("a batch of %s records on average lingers up to %d ms to fill, spends %.0f ms in the scorer and %.0f ms in the sinks; "+
		"the remaining %.0f ms of the p99 is waiting behind the batch in flight and for the fetch",
		human(perBatch), consumers.DefaultBatchLinger.Milliseconds(), score, write,
		max(0, p99-float64(consumers.DefaultBatchLinger.Milliseconds())-score-write))
	return g
}

// aloneRate is a stage's own measured rate in input events per second
// (rate / perEvent), for comparing stages of different units; "" when not
// measured.
func aloneRate(rep *Report, id string, perEvent float64) string {
	row := rep.Row(id)
	if row == nil || !row.Value.Valid() || perEvent <= 0 {
		return ""
	}
	return human(row.Value.Median/perEvent) + " events/s"
}

// rowsPerEvent is ClickHouse rows (events + recommendations) per input
// record of the batches the sinks wrote.
func rowsPerEvent(rep *Report) float64 {
	if rep.Data.SinkRecords == 0 {
		return 0
	}
	return float64(rep.Data.ClickHouseRows) / float64(rep.Data.SinkRecords)
}

// recsPerEvent is recommendation records per input record of the batches
// the sinks wrote.
func recsPerEvent(rep *Report) float64 {
	if rep.Data.SinkRecords == 0 {
		return 0
	}
	return float64(rep.Data.SinkRecommendations) / float64(rep.Data.SinkRecords)
}

// cpuNote says how busy the machine's cores were while the pipeline ran.
func cpuNote(rep *Report, row *Row) string {
	cores := row.Cores.Median
	n := float64(rep.Machine.CPUs)
	s := fmt.Sprintf("CPU: %.1f of %d cores busy (ClickHouse %.1f of them, the rest this process with the in-process broker)",
		cores, rep.Machine.CPUs, row.ClickHouseCores.Median)
	if n > 0 && cores >= 0.85*n {
		s += ": the cores are saturated, so the stages and the broker slow each other down"
	}
	if o := row.OtherCores.Median; o >= 0.1 {
		s += fmt.Sprintf("; other processes took %.1f cores meanwhile", o)
	} else if rep.Machine.LoadBefore > n && n > 0 {
		s += fmt.Sprintf("; the machine was loaded by others too (load %.1f at the start)", rep.Machine.LoadBefore)
	}
	return s
}
