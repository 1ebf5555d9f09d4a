package drills

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Report is the result of a drill: every scenario with what it measured
// and which guarantees held. WriteJSON and WriteMarkdown render it.
type Report struct {
	// Command is the command line that ran the drill, set by the caller
	// (the drill itself does not know it); empty leaves it out.
	Command string `json:"command,omitempty"`
	// Started is when the drill began; Seconds how long it took.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// Settings are the drill's parameters.
	Settings Settings `json:"settings"`
	// Cluster describes the components the drill ran against.
	Cluster ClusterInfo `json:"cluster"`
	// Reference is the fault-free run every scenario is compared with.
	Reference ScenarioResult `json:"reference"`
	// Scenarios are the scenarios, in the order they ran.
	Scenarios []ScenarioResult `json:"scenarios"`
	// Passed is true when every guarantee of every scenario (and of the
	// reference) held.
	Passed bool `json:"passed"`
	// Broken lists every broken guarantee as "scenario: what".
	Broken []string `json:"broken,omitempty"`
}

// Settings are the parameters of a drill, as the report records them.
type Settings struct {
	Scenarios                 []string `json:"scenarios"`
	Seed                      uint64   `json:"seed"`
	Events                    int      `json:"events"`
	Kills                     int      `json:"kills"`
	OutageSeconds             float64  `json:"outage_seconds"`
	Partitions                int      `json:"partitions"`
	SessionTimeoutSeconds     float64  `json:"session_timeout_seconds"`
	CheckpointIntervalSeconds float64  `json:"checkpoint_interval_seconds"`
	BatchRows                 int      `json:"batch_rows"`
	PoisonRecords             int      `json:"poison_records"`
	Contention                int      `json:"contention"`
}

func settingsOf(c Config) Settings {
	return Settings{
		Scenarios: c.ordered(), Seed: c.Seed, Events: c.Events, Kills: c.Kills, OutageSeconds: c.Outage.Seconds(),
		Partitions: c.Partitions, SessionTimeoutSeconds: c.SessionTimeout.Seconds(),
		CheckpointIntervalSeconds: c.CheckpointInterval.Seconds(), BatchRows: c.BatchRows, PoisonRecords: c.PoisonRecords,
		Contention: c.Contention,
	}
}

// ClusterInfo describes what a drill ran against.
type ClusterInfo struct {
	KafkaBrokers      int      `json:"kafka_brokers"`
	KafkaAddrs        []string `json:"kafka_addrs"`
	ReplicationFactor int      `json:"replication_factor"`
	MinInsyncReplicas int      `json:"min_insync_replicas"`
	ClickHouseAddr    string   `json:"clickhouse_addr"`
	ModelV1           string   `json:"model_v1"`
	ModelV2           string   `json:"model_v2,omitempty"`
}

// ScenarioResult is what one scenario (or the reference run) measured.
type ScenarioResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Passed is true when no guarantee was broken; Broken says which were.
	Passed bool     `json:"passed"`
	Broken []string `json:"broken,omitempty"`
	// Notes are observations that are not guarantees (which node was lost,
	// which checkpoint generation was used, ...).
	Notes   []string `json:"notes,omitempty"`
	Seconds float64  `json:"seconds"`

	// Produced counts the input records; Valid the valid ones found in
	// ClickHouse events FINAL; DeadLettered the distinct input records in
	// the dead-letter topic; Lost the records in neither (must be 0);
	// Misrouted the records in the wrong place or with the wrong reason.
	Produced     int `json:"produced"`
	Valid        int `json:"valid"`
	DeadLettered int `json:"dead_lettered"`
	Lost         int `json:"lost"`
	Misrouted    int `json:"misrouted"`

	// Compared counts the users whose final recommendation was compared
	// with the reference; Differing those that differ in either sink (must
	// be 0), split by sink.
	Compared            int `json:"compared"`
	Differing           int `json:"differing"`
	DifferingClickHouse int `json:"differing_clickhouse"`
	DifferingTopic      int `json:"differing_topic"`

	// AbsorbedClickHouse is the recommendation rows written minus the rows
	// left after FINAL; AbsorbedTopic the output records minus the distinct
	// keys: everything the idempotent sinks collapse. RewritesClickHouse and
	// RewritesTopic count the part of them that rewrote a (user, version)
	// already written (a retry, or a replay after a restart); Conflicts the
	// rewrites whose content differed (must be 0: that would be an event
	// applied twice or a nondeterministic output).
	AbsorbedClickHouse int64 `json:"absorbed_clickhouse"`
	AbsorbedTopic      int64 `json:"absorbed_topic"`
	RewritesClickHouse int64 `json:"rewrites_clickhouse"`
	RewritesTopic      int64 `json:"rewrites_topic"`
	Conflicts          int   `json:"conflicts"`

	// Faults are the faults injected, with their recovery.
	Faults []Fault `json:"faults,omitempty"`
	// RTOSeconds is the longest recovery of the faults (-1 when one never
	// recovered, 0 when there was no fault); RTOMedianSeconds the median.
	RTOSeconds       float64 `json:"rto_seconds"`
	RTOMedianSeconds float64 `json:"rto_median_seconds"`
	// UnexpectedExits counts pipeline exits the drill did not cause (the
	// drill restarts the pipeline, as a supervisor would).
	UnexpectedExits int `json:"unexpected_exits"`
	// Samples trace the scenario's progress over time (for the timeline).
	Samples []Sample `json:"samples,omitempty"`
}

// Fault is one fault a scenario injected, with times in seconds since the
// scenario began.
type Fault struct {
	Kind   string  `json:"kind"`
	Detail string  `json:"detail,omitempty"`
	Start  float64 `json:"start"`
	// End is when the fault was repaired (the pipeline restarted, the
	// server back); equal to Start for a fault that is not repaired.
	End float64 `json:"end"`
	// Recovered is when the pipeline completed a batch again after the
	// outage the fault caused: the group committed input offsets, which it
	// does only once every sink acknowledged the batch (see recoveryTime);
	// -1 when it never did.
	Recovered float64 `json:"recovered"`
	// RTOSeconds is Recovered - Start: the recovery time objective met.
	RTOSeconds float64 `json:"rto_seconds"`
	// OutputResumed is when the output topic grew again after the outage,
	// and OutputRTOSeconds that minus Start (-1: never). It can come before
	// Recovered: a batch whose write failed for some partitions is retried
	// whole, and each retry rewrites the records that did get through.
	OutputResumed    float64 `json:"output_resumed"`
	OutputRTOSeconds float64 `json:"output_rto_seconds"`
	// afterRepair makes recovery the first output after End rather than
	// after an outage (a model swap causes no outage; what counts is the
	// first output of the new version).
	afterRepair bool
}

// finish computes every fault's recovery from the samples and the RTO
// summary.
func (r *ScenarioResult) finish() {
	var rtos []float64
	never := false
	for i := range r.Faults {
		f := &r.Faults[i]
		from, to := f.Start, f.End
		if f.afterRepair {
			from = f.End
		}
		f.OutputResumed, f.OutputRTOSeconds = -1, -1
		if at, ok := recoveryTime(r.Samples, from, to, outputGrew); ok {
			f.OutputResumed, f.OutputRTOSeconds = at, at-f.Start
		}
		at, ok := recoveryTime(r.Samples, from, to, commitsMoved)
		if !ok {
			f.Recovered, f.RTOSeconds = -1, -1
			never = true
			r.breaks("fault %d (%s at %.1fs): the pipeline never committed a batch after it", i+1, f.Kind, f.Start)
			continue
		}
		f.Recovered, f.RTOSeconds = at, at-f.Start
		rtos = append(rtos, f.RTOSeconds)
	}
	if len(rtos) > 0 {
		slices.Sort(rtos)
		r.RTOSeconds, r.RTOMedianSeconds = rtos[len(rtos)-1], rtos[len(rtos)/2]
	}
	if never {
		r.RTOSeconds = -1
	}
	r.Passed = len(r.Broken) == 0
}

func (r *ScenarioResult) breaks(format string, args ...any) {
	r.Broken = append(r.Broken, fmt.Sprintf(format, args...))
}

func (r *ScenarioResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write drill report json: %w", err)
	}
	return nil
}

// WriteFile writes the report to path with write (WriteJSON or
// WriteMarkdown).
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func seconds(s float64) string {
	switch {
	case s < 0:
		return "never"
	case s == 0:
		return "–"
	default:
		return fmt.Sprintf("%.1f s", s)
	}
}

// Table writes the summary table (Markdown): one row per scenario.
func (rep *Report) Table(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| scenario | faults | produced | lost | differing | duplicates absorbed (ClickHouse / topic) | rewrites (ClickHouse / topic) | RTO max (median) | result |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, s := range rep.Scenarios {
		result := "held"
		if !s.Passed {
			result = fmt.Sprintf("**BROKEN** (%d)", len(s.Broken))
		}
		rto := seconds(s.RTOSeconds)
		if len(s.Faults) > 1 && s.RTOSeconds > 0 {
			rto += " (" + seconds(s.RTOMedianSeconds) + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d of %d | %d / %d | %d / %d | %s | %s |\n",
			s.Name, len(s.Faults), s.Produced, s.Lost, s.Differing, s.Compared,
			s.AbsorbedClickHouse, s.AbsorbedTopic, s.RewritesClickHouse, s.RewritesTopic, rto, result)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the report for people: the verdict, the summary
// table, what the columns mean, and each scenario's faults and notes.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# recstream disaster-recovery drill\n\n")
	writeVerdict(&b, fmt.Sprintf("**Every guarantee held** in %d scenarios.", len(rep.Scenarios)), rep.Broken, rep.Command)
	st := rep.Settings
	fmt.Fprintf(&b, "Started %s, took %s. Seed %d, %d input events per scenario over %d partitions; "+
		"session timeout %gs, checkpoint every %gs, batches of up to %d events.\n\n",
		rep.Started.UTC().Format(time.RFC3339), (time.Duration(rep.Seconds * float64(time.Second))).Round(time.Second),
		st.Seed, st.Events, st.Partitions, st.SessionTimeoutSeconds, st.CheckpointIntervalSeconds, st.BatchRows)
	c := rep.Cluster
	fmt.Fprintf(&b, "Ran against a real Apache Kafka cluster of %d brokers (replication factor %d, min.insync.replicas %d), "+
		"a real ClickHouse server, and the pipeline as a child process (`recstream run`) with checkpoints on. Model %s",
		c.KafkaBrokers, c.ReplicationFactor, c.MinInsyncReplicas, c.ModelV1)
	if c.ModelV2 != "" {
		fmt.Fprintf(&b, " (model-rollback switches to %s and back)", c.ModelV2)
	}
	ref := rep.Reference
	fmt.Fprintf(&b, ".\n\nReference: a fault-free run on the same input and model: %d records, %d valid, %d dead-lettered, "+
		"%d users with recommendations, %s.\n\n", ref.Produced, ref.Valid, ref.DeadLettered, ref.Compared, seconds(ref.Seconds))
	if err := rep.Table(&b); err != nil {
		return err
	}
	b.WriteString(`
How to read it:

- **lost**: input records neither applied (in ClickHouse ` + "`events FINAL`" + `) nor dead-lettered. Must be 0.
- **differing**: users whose final recommendation differs from the reference run's, in ClickHouse
  ` + "`recommendations FINAL`" + ` or in the output topic's newest record per key (what compaction keeps). Must be 0.
- **duplicates absorbed**: recommendation rows written minus rows left after FINAL, and output records minus
  distinct keys: older versions and rewrites that the idempotent sinks collapse. **rewrites** is the part that
  rewrote a (user, version) already written — retries and replays after a restart; each must be identical to
  the first write (a conflict breaks a guarantee).
- **RTO**: from the moment a fault is injected to the first batch the pipeline completes after the outage it
  caused (progress stopped for at least 0.5 s): the first commit of input offsets, which happens only once every
  sink acknowledged the batch. For kill9 the largest of the kills, with the median in parentheses. The fault tables
  also give when the output topic grew again, which can be earlier: a batch whose write failed for some
  partitions is retried whole, and each retry rewrites the records that got through.
- ClickHouse collapses duplicates in background merges, so its counts show only what was not merged yet when the
  drill read the table; the output topic's counts are exact (no compaction runs during a drill).
`)
	for _, s := range rep.Scenarios {
		writeScenario(&b, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeVerdict writes a report's opening: held when nothing is broken, else
// the list of broken guarantees, each on one line; then the command, if
// known.
func writeVerdict(b *strings.Builder, held string, broken []string, command string) {
	if len(broken) == 0 {
		b.WriteString(held + "\n\n")
	} else {
		fmt.Fprintf(b, "**%d guarantees broken:**\n\n", len(broken))
		for _, br := range broken {
			fmt.Fprintf(b, "- %s\n", strings.ReplaceAll(br, "\n", " "))
		}
		b.WriteString("\n")
	}
	if command != "" {
		fmt.Fprintf(b, "Command: `%s`\n\n", command)
	}
}

func writeScenario(b *strings.Builder, s ScenarioResult) {
	fmt.Fprintf(b, "\n## %s\n\n%s.\n\n", s.Name, s.Description)
	if s.Passed {
		b.WriteString("Every guarantee held.\n\n")
	} else {
		b.WriteString("Broken:\n\n")
		for _, br := range s.Broken {
			fmt.Fprintf(b, "- %s\n", indentLines(br))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "%d records produced: %d valid events applied, %d dead-lettered, %d lost, %d misrouted. "+
		"%d users compared: %d differ (ClickHouse %d, topic %d). Rewrites absorbed: %d ClickHouse rows, %d topic records; "+
		"%d conflicting. Took %s.\n\n",
		s.Produced, s.Valid, s.DeadLettered, s.Lost, s.Misrouted, s.Compared, s.Differing, s.DifferingClickHouse,
		s.DifferingTopic, s.RewritesClickHouse, s.RewritesTopic, s.Conflicts, seconds(s.Seconds))
	if len(s.Faults) > 0 {
		b.WriteString("| # | fault | injected | repaired | output grew | batch committed | RTO |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
		for i, f := range s.Faults {
			kind := f.Kind
			if f.Detail != "" {
				kind += ": " + f.Detail
			}
			at := func(t float64) string {
				if t < 0 {
					return "never"
				}
				return fmt.Sprintf("%.2f s", t)
			}
			fmt.Fprintf(b, "| %d | %s | %.2f s | %.2f s | %s | %s | %s |\n", i+1, kind, f.Start, f.End,
				at(f.OutputResumed), at(f.Recovered), seconds(f.RTOSeconds))
		}
		b.WriteString("\n")
	}
	for _, n := range s.Notes {
		fmt.Fprintf(b, "- %s\n", indentLines(n))
	}
}

func indentLines(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
