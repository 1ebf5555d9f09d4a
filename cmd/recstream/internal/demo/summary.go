// Package demo reads what a demo run left in its sinks and prints the
// summary `make demo` ends with.
package demo

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
)

// Summary is what the demo prints, and writes with --summary-json.
type Summary struct {
	EventsProduced     int                `json:"events_produced"`
	EventsValid        uint64             `json:"events_valid"`
	EventsDLQ          uint64             `json:"events_dlq"`
	DLQByReason        map[string]uint64  `json:"dlq_by_reason"`
	DLQTopicRecords    int64              `json:"dlq_topic_records"`
	UsersRefreshed     uint64             `json:"users_refreshed"`
	Refreshes          uint64             `json:"refreshes"`
	RecsClickHouseRows uint64             `json:"recs_clickhouse_rows"`
	EventsClickHouse   uint64             `json:"events_clickhouse_rows"`
	RecsKafkaRecords   int64              `json:"recs_kafka_records"`
	Batches            uint64             `json:"batches"`
	ScoreSeconds       float64            `json:"score_seconds"`
	WriteSeconds       float64            `json:"write_seconds"`
	SinkSeconds        map[string]float64 `json:"sink_seconds"`
	Seconds            float64            `json:"seconds"`
	EventsPerSec       float64            `json:"events_per_sec"`
	CeilingPerSec      float64            `json:"raw_consume_events_per_sec,omitempty"`
	LatencyP50Ms       float64            `json:"latency_p50_ms"`
	LatencyP95Ms       float64            `json:"latency_p95_ms"`
	LatencyP99Ms       float64            `json:"latency_p99_ms"`
	LatencyMaxMs       float64            `json:"latency_max_ms"`
	SinkRetries        map[string]uint64  `json:"sink_retries"`
	ModelVersion       string             `json:"model_version"`
	Examples           []Example          `json:"examples"`
}

// Example shows one user's interests next to their recommendations.
type Example struct {
	UserID    string    `json:"user_id"`
	Interests []string  `json:"interests"`
	Items     []string  `json:"items"`
	Scores    []float32 `json:"scores"`
	Version   uint64    `json:"version"`
}

// Sources are what the summary is read from after the run.
type Sources struct {
	Stats          pipeline.Snapshot
	Produced       int
	Kinds          map[string]int
	ClickHouseAddr string
	Database       string
	Brokers        []string
	InputTopic     string
	OutputTopic    string
	DLQTopic       string
	Gen            *generator.Generator
	ModelVersion   string
	MeasureCeiling bool
}

// Collect reads the sinks themselves, not only the pipeline's own
// counters, so that the summary shows what actually landed.
func Collect(ctx context.Context, src Sources) (Summary, error) {
	st := src.Stats
	s := Summary{
		EventsProduced: src.Produced,
		EventsValid:    st.EventsValid,
		EventsDLQ:      st.DeadLetters,
		DLQByReason:    st.DeadByReason,
		Refreshes:      st.Refreshes,
		Batches:        st.Batches,
		ScoreSeconds:   st.ScoreSeconds,
		WriteSeconds:   st.WriteSeconds,
		SinkSeconds:    st.SinkSeconds,
		Seconds:        st.Busy.Seconds(),
		LatencyP50Ms:   ms(st.LatencyP50),
		LatencyP95Ms:   ms(st.LatencyP95),
		LatencyP99Ms:   ms(st.LatencyP99),
		LatencyMaxMs:   ms(st.LatencyMax),
		SinkRetries:    st.Retries,
		ModelVersion:   src.ModelVersion,
	}
	if s.Seconds > 0 {
		s.EventsPerSec = float64(st.Records) / s.Seconds
	}

	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{src.ClickHouseAddr},
		Auth: clickhouse.Auth{Database: src.Database, Username: "default"},
	})
	if err != nil {
		return s, fmt.Errorf("connect to clickhouse for the summary: %w", err)
	}
	defer conn.Close()
	if err := conn.QueryRow(ctx, "SELECT count() FROM recommendations FINAL").Scan(&s.RecsClickHouseRows); err != nil {
		return s, fmt.Errorf("count recommendations: %w", err)
	}
	s.UsersRefreshed = s.RecsClickHouseRows
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&s.EventsClickHouse); err != nil {
		return s, fmt.Errorf("count events: %w", err)
	}

	adm, err := kgo.NewClient(kgo.SeedBrokers(src.Brokers...))
	if err != nil {
		return s, fmt.Errorf("kafka admin client: %w", err)
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	ends, err := admin.ListEndOffsets(ctx, src.OutputTopic, src.DLQTopic)
	if err != nil {
		return s, fmt.Errorf("list end offsets: %w", err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		switch o.Topic {
		case src.OutputTopic:
			s.RecsKafkaRecords += o.Offset
		case src.DLQTopic:
			s.DLQTopicRecords += o.Offset
		}
	})

	s.Examples, err = demoExamples(ctx, conn, src.Gen, 3)
	if err != nil {
		return s, err
	}
	if src.MeasureCeiling {
		s.CeilingPerSec, err = measureRawConsume(ctx, src.Brokers, src.InputTopic, src.Produced)
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// demoExamples picks the most active users and shows what they like next to
// what they were recommended.
func demoExamples(ctx context.Context, conn clickhouse.Conn, gen *generator.Generator, n int) ([]Example, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf(`
		SELECT user_id, items, scores, version FROM recommendations FINAL
		WHERE user_id IN (SELECT user_id FROM events GROUP BY user_id ORDER BY count() DESC, user_id LIMIT %d)
		ORDER BY user_id`, n))
	if err != nil {
		return nil, fmt.Errorf("query example users: %w", err)
	}
	defer rows.Close()
	var out []Example
	cats := gen.Config().Categories
	for rows.Next() {
		var ex Example
		if err := rows.Scan(&ex.UserID, &ex.Items, &ex.Scores, &ex.Version); err != nil {
			return nil, fmt.Errorf("read example user: %w", err)
		}
		var idx int
		if _, err := fmt.Sscanf(ex.UserID, "u%d", &idx); err == nil {
			for _, c := range gen.Interests(idx) {
				if name := fmt.Sprintf("c%02d", c%cats); !slices.Contains(ex.Interests, name) {
					ex.Interests = append(ex.Interests, name)
				}
			}
		}
		out = append(out, ex)
	}
	return out, rows.Err()
}

// measureRawConsume reads the whole input topic with a fresh consumer group
// (franz-go, no decoding): the ceiling the pipeline's throughput compares with.
func measureRawConsume(ctx context.Context, brokers []string, topic string, want int) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(fmt.Sprintf("recstream-ceiling-%d", time.Now().UnixNano())),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, fmt.Errorf("ceiling consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// The clock starts when the first fetch returns, so that joining the
	// group is not counted; the records of that first fetch are not counted
	// either. A topic small enough to come back in one fetch is timed from
	// before the join instead (a lower, conservative ceiling).
	joinStart := time.Now()
	var got, counted int
	var start time.Time
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("ceiling consumer read %d of %d records: %w", got, want, err)
		}
		n := fs.NumRecords()
		got += n
		if start.IsZero() {
			start = time.Now()
			continue
		}
		counted += n
	}
	if counted == 0 {
		return float64(got) / time.Since(joinStart).Seconds(), nil
	}
	return float64(counted) / time.Since(start).Seconds(), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func Print(w io.Writer, s Summary) {
	fmt.Fprintf(w, "\nrecstream demo summary\n")
	fmt.Fprintf(w, "  events produced        %d\n", s.EventsProduced)
	fmt.Fprintf(w, "  events valid           %d\n", s.EventsValid)
	fmt.Fprintf(w, "  events dead-lettered   %d (dead-letter topic holds %d)\n", s.EventsDLQ, s.DLQTopicRecords)
	reasons := make([]string, 0, len(s.DLQByReason))
	for r := range s.DLQByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "      %-20s %d\n", r, s.DLQByReason[r])
	}
	fmt.Fprintf(w, "  refreshes              %d in %d batches\n", s.Refreshes, s.Batches)
	fmt.Fprintf(w, "  users refreshed        %d\n", s.UsersRefreshed)
	fmt.Fprintf(w, "  clickhouse rows        %d recommendations (FINAL), %d events\n", s.RecsClickHouseRows, s.EventsClickHouse)
	fmt.Fprintf(w, "  kafka output records   %d\n", s.RecsKafkaRecords)
	fmt.Fprintf(w, "  throughput             %.0f events/s over %.1f s", s.EventsPerSec, s.Seconds)
	if s.CeilingPerSec > 0 {
		fmt.Fprintf(w, " (raw consume of the same topic: %.0f events/s, %.0f%%)", s.CeilingPerSec, 100*s.EventsPerSec/s.CeilingPerSec)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  time in stages         score %.1f s, write %.1f s (clickhouse %.1f s, kafka %.1f s, in parallel)\n",
		s.ScoreSeconds, s.WriteSeconds, s.SinkSeconds["clickhouse"], s.SinkSeconds["kafka"])
	fmt.Fprintf(w, "  latency event→rec      p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		s.LatencyP50Ms, s.LatencyP95Ms, s.LatencyP99Ms, s.LatencyMaxMs)
	if len(s.SinkRetries) > 0 {
		fmt.Fprintf(w, "  sink retries           %v\n", s.SinkRetries)
	}
	fmt.Fprintf(w, "  model_version          %s\n", s.ModelVersion)
	for _, ex := range s.Examples {
		top := ex.Items
		if len(top) > 5 {
			top = top[:5]
		}
		fmt.Fprintf(w, "  user %s likes %s → %s\n", ex.UserID, strings.Join(ex.Interests, ","), strings.Join(top, " "))
	}
}
