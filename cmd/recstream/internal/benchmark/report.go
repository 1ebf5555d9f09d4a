package benchmark

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Stages of the report, in the order of the data flow; Row.Stage is one of
// them.
const (
	StageProduce     = "produce"
	StageConsume     = "consume"
	StageScore       = "score"
	StageClickHouse  = "clickhouse sink"
	StageKafkaOutput = "kafka output sink"
	StagePipeline    = "whole pipeline"
)

// Row is one line of the results table: a ceiling (a raw measurement) or a
// recstream stage compared with its ceiling.
type Row struct {
	// ID names the row uniquely (for example "consume.franz-go"); Against
	// refers to it.
	ID string `json:"id"`
	// Stage is one of the Stage* constants.
	Stage string `json:"stage"`
	// Name says what was measured, for people.
	Name string `json:"name"`
	// Unit is the unit of Value, for example "events/s".
	Unit string `json:"unit"`
	// Value is the measured rate over the repeats.
	Value Figure `json:"value"`
	// Ceiling marks a raw measurement that stages are compared with; Best
	// marks the fastest ceiling of its stage, the one stages compare with.
	Ceiling bool `json:"ceiling,omitempty"`
	Best    bool `json:"best,omitempty"`
	// Against is the ID of the ceiling this row is compared with; empty for
	// ceilings and reference rows.
	Against string `json:"against,omitempty"`
	// Ratio is Value's median over the median of Against; 0 when there is
	// none.
	Ratio float64 `json:"ratio,omitempty"`
	// Cores is how many CPU cores the measurement kept busy (this process
	// plus the ClickHouse server), median over the repeats.
	Cores Figure `json:"cores"`
	// ClickHouseCores is the part of Cores the ClickHouse server took.
	ClickHouseCores Figure `json:"clickhouse_cores"`
	// OtherCores is how many cores every other process of the machine kept
	// busy meanwhile: on a shared machine, the noise in the figure.
	OtherCores Figure `json:"other_cores"`
	// Note holds the settings that matter to read the figure.
	Note string `json:"note,omitempty"`
}

// LatencyRow is the pipeline's event-to-recommendation latency (from the
// event's log time to the moment every sink acknowledged its
// recommendation) under live load.
type LatencyRow struct {
	// Load is the target rate as a share of the pipeline's maximum
	// throughput (0.5, 1).
	Load float64 `json:"load"`
	// Rate is the target rate in events/s; Achieved what the producer
	// reached.
	Rate     float64 `json:"rate"`
	Achieved Figure  `json:"achieved"`
	// P50, P95, P99 and Max are in milliseconds.
	P50 Figure `json:"p50_ms"`
	P95 Figure `json:"p95_ms"`
	P99 Figure `json:"p99_ms"`
	Max Figure `json:"max_ms"`
	// Events is the number of events produced live per repeat.
	Events int `json:"events"`
	// BatchScoreMs and BatchWriteMs are the mean time a batch spent in the
	// scorer and in the sinks; BatchRecords the mean records per batch.
	BatchScoreMs Figure `json:"batch_score_ms"`
	BatchWriteMs Figure `json:"batch_write_ms"`
	BatchRecords Figure `json:"batch_records"`
	// Cores, ClickHouseCores and OtherCores are as in Row: the cores this
	// process and ClickHouse kept busy, ClickHouse's part of them, and
	// those other processes kept busy meanwhile.
	Cores           Figure `json:"cores"`
	ClickHouseCores Figure `json:"clickhouse_cores"`
	OtherCores      Figure `json:"other_cores"`
}

// PipelineBreakdown tells where the whole pipeline's time went while it ran
// at its maximum throughput.
type PipelineBreakdown struct {
	// BusySeconds is the time from the first record fetched to the last
	// commit, median.
	BusySeconds float64 `json:"busy_seconds"`
	// ScoreShare and WriteShare are the shares of the busy time a batch
	// was in the scorer and in the sinks (they overlap: the sinks write
	// batch n while batch n+1 is scored).
	ScoreShare float64 `json:"score_share"`
	WriteShare float64 `json:"write_share"`
	// SinkShare is, per sink, the share of the busy time it was writing.
	SinkShare map[string]float64 `json:"sink_share"`
	// Batches and RecordsPerBatch describe the micro-batches;
	// BatchScoreMs and BatchWriteMs are the mean time a batch spent in the
	// scorer and in the sinks.
	Batches         float64 `json:"batches"`
	RecordsPerBatch float64 `json:"records_per_batch"`
	BatchScoreMs    float64 `json:"batch_score_ms"`
	BatchWriteMs    float64 `json:"batch_write_ms"`
}

// StageResources is what a step of the run cost the machine.
type StageResources struct {
	// Stage names the step.
	Stage string `json:"stage"`
	// PeakRSSBytes is the process's peak resident memory while the stage
	// ran (VmHWM, reset before the stage). It includes the in-process Kafka
	// broker and the data set the benchmark holds, not the ClickHouse
	// server.
	PeakRSSBytes float64 `json:"peak_rss_bytes"`
	// ClickHouseRSSBytes is the ClickHouse server's resident memory at the
	// end of the stage.
	ClickHouseRSSBytes float64 `json:"clickhouse_rss_bytes"`
	// LoadAverage is the machine's 1-minute load average at the end of
	// the stage: above the number of CPUs, other work competed with it.
	LoadAverage float64 `json:"load_average"`
	// IOPressure is the share of the stage's time some task of the machine
	// was stalled on I/O (Linux pressure stall information; -1 where the
	// kernel does not report it): disk contention slows ClickHouse and the
	// broker's log.
	IOPressure float64 `json:"io_pressure"`
}

// Resources are the memory figures of the run.
type Resources struct {
	// StateBytesPerUser is the heap the scorer's state store takes per
	// user (D float32 values, the bought-items list, bookkeeping, the id and
	// its map entry), measured by storing StateUsers users.
	StateBytesPerUser float64 `json:"state_bytes_per_user"`
	StateUsers        int     `json:"state_users"`
	StateDim          int     `json:"state_dim"`
	// Stages lists the peak memory of each stage.
	Stages []StageResources `json:"stages"`
}

// Goal is one of the project's performance goals, checked against the run.
type Goal struct {
	// Name names the goal ("scorer throughput").
	Name string `json:"name"`
	// Target states the goal, for example ">= 80% of the raw consume
	// ceiling".
	Target string `json:"target"`
	// Measured is the figure the goal is judged on, in words.
	Measured string `json:"measured"`
	// Pass is true when the goal is met.
	Pass bool `json:"pass"`
	// Limit says what limits the stage: always for a miss, where known for
	// a pass.
	Limit string `json:"limit,omitempty"`
}

// Machine describes where the run took place: figures from a busy machine
// are noisy.
type Machine struct {
	// CPUs, GoVersion and OS are as the Go runtime reports them.
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	// LoadBefore and LoadAfter are the 1-minute load averages at the start
	// and the end of the run.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
	// ONNXRuntime and ClickHouse are the versions measured.
	ONNXRuntime string `json:"onnxruntime"`
	ClickHouse  string `json:"clickhouse"`
	// Device is where the scorer ran ("cpu" or "cuda").
	Device string `json:"device"`
}

// DataSummary describes the data set every stage measured.
type DataSummary struct {
	// Records is the number of input records, Bytes their keys and values;
	// ValidEvents of them are valid, the rest malformed (dead letters).
	Records     int `json:"records"`
	Bytes       int `json:"bytes"`
	ValidEvents int `json:"valid_events"`
	// EventBatches is the number of batches the consumer cut.
	EventBatches int `json:"event_batches"`
	// Recommendations is the number of records the scorer made of them
	// (one per user per batch).
	Recommendations int `json:"recommendations"`
	// SinkRecords is the input records of the batches the sink stages
	// wrote (Config.SinkBatches of them), SinkRecommendations their
	// recommendations, ClickHouseRows the rows the ClickHouse sink writes
	// for them (events and recommendations).
	SinkRecords         int `json:"sink_records"`
	SinkRecommendations int `json:"sink_recommendations"`
	ClickHouseRows      int `json:"clickhouse_rows"`
}

// Report is the outcome of a benchmark run. Run fills it as it goes: after
// a failed stage it holds what was measured before.
type Report struct {
	// Config is the run's configuration, defaults filled in.
	Config Config `json:"config"`
	// Machine and Data say where the figures come from.
	Machine Machine     `json:"machine"`
	Data    DataSummary `json:"data"`
	// Started is when the run began (UTC); Seconds how long it took.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// Rows are the throughput figures, ceilings and stages, in data-flow
	// order.
	Rows []Row `json:"rows"`
	// Latency is the whole pipeline's latency under live load, at 50% and
	// 100% of its maximum throughput; Breakdown where its time went at the
	// maximum.
	Latency   []LatencyRow      `json:"latency"`
	Breakdown PipelineBreakdown `json:"pipeline_breakdown"`
	// Resources are the memory figures.
	Resources Resources `json:"resources"`
	// Goals are the performance goals, judged once every stage ran.
	Goals []Goal `json:"goals"`
}

// Row returns the row with id, or nil.
func (r *Report) Row(id string) *Row {
	for i := range r.Rows {
		if r.Rows[i].ID == id {
			return &r.Rows[i]
		}
	}
	return nil
}

// BestCeiling returns the fastest ceiling of stage, or nil.
func (r *Report) BestCeiling(stage string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Stage == stage && r.Rows[i].Best {
			return &r.Rows[i]
		}
	}
	return nil
}

// addRow appends a row.
func (r *Report) addRow(row Row) { r.Rows = append(r.Rows, row) }

// insertAfter inserts row after the row with id (at the end when there is
// none).
func (r *Report) insertAfter(id string, row Row) {
	for i := range r.Rows {
		if r.Rows[i].ID == id {
			r.Rows = slices.Insert(r.Rows, i+1, row)
			return
		}
	}
	r.addRow(row)
}

// markBest marks the fastest ceiling of stage (by median) and points every
// row listed in users at it, filling their ratios.
func (r *Report) markBest(stage string) *Row {
	var best *Row
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Stage != stage || !row.Ceiling {
			continue
		}
		row.Best = false
		if row.Value.Valid() && (best == nil || row.Value.Median > best.Value.Median) {
			best = row
		}
	}
	if best != nil {
		best.Best = true
	}
	return best
}

// compare points row id at ceiling against and fills its ratio.
func (r *Report) compare(id, against string) {
	row, c := r.Row(id), r.Row(against)
	if row == nil || c == nil {
		return
	}
	row.Against = against
	if c.Value.Median > 0 && row.Value.Valid() {
		row.Ratio = row.Value.Median / c.Value.Median
	}
}

// WriteJSON writes the report as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
