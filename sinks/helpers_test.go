package sinks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/schemas"
)

// sharedCH is the package's ClickHouse server, started by TestMain in a
// temporary directory and stopped at the end. Tests that take the server
// down start their own.
var sharedCH *embedded.ClickHouseServer

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "recstream-sinks-clickhouse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	sharedCH, err = embedded.StartClickHouse(ctx, dir, nil)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start clickhouse for the sinks tests: %v (run make setup)\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := sharedCH.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop clickhouse pid %d: %v\n", sharedCH.PID(), err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// testDatabase returns a database name unique to the test.
func testDatabase(t testing.TB) string {
	name := strings.ToLower(nonIdent.ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "t_" + name
}

// freshDatabase returns testDatabase(t) after dropping it from the shared
// server, so that a test starts from nothing also when it runs again in
// the same process (go test -count=N).
func freshDatabase(t testing.TB) string {
	t.Helper()
	db := testDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := chConn(t, sharedCH.Addr()).Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatalf("drop database %s: %v", db, err)
	}
	return db
}

// chConn opens a plain client connection for checking what the sink wrote.
func chConn(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, Protocol: clickhouse.Native, ReadTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func queryUint64(t testing.TB, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var v uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// recSpec describes a batch of recommendations: users userBase..userBase+n-1,
// each at version versionBase+user, with k items.
type recSpec struct {
	n, userBase, k int
	versionBase    uint64
	model          string
	seed           uint64
}

// makeRecs builds the batch and returns it with its rows as structs.
func makeRecs(t testing.TB, spec recSpec) (*schemas.RecommendationBatch, []schemas.Recommendation) {
	t.Helper()
	if spec.model == "" {
		spec.model = "test-model-v1"
	}
	rng := rand.New(rand.NewPCG(spec.seed, 99))
	b := schemas.NewRecommendationBuilder(memory.NewGoAllocator())
	defer b.Release()
	recs := make([]schemas.Recommendation, spec.n)
	for i := range recs {
		u := spec.userBase + i
		r := schemas.Recommendation{
			UserID:       fmt.Sprintf("user-%06d", u),
			Items:        make([]string, spec.k),
			Scores:       make([]float32, spec.k),
			ModelVersion: spec.model,
			Version:      spec.versionBase + uint64(u),
			EventTsMs:    1795838901123 + int64(u)*1000,
			ProducedAtMs: 1795838902456 + int64(u)*1000,
			Partition:    int32(u % 8),
			Offset:       int64(spec.versionBase) + int64(u),
		}
		for j := range spec.k {
			r.Items[j] = fmt.Sprintf("item-%05d", rng.IntN(100000))
			r.Scores[j] = rng.Float32()
		}
		recs[i] = r
		b.Append(&recs[i])
	}
	return &schemas.RecommendationBatch{Recs: b.NewRecord()}, recs
}

// makeEvents builds an event batch of n events over users 0..users-1. Every
// third event has no price and no session; every fifth is a search.
func makeEvents(t testing.TB, n, users int) *schemas.EventBatch {
	t.Helper()
	b := schemas.NewEventBuilder(memory.NewGoAllocator())
	defer b.Release()
	for i := range n {
		ev := schemas.Event{
			EventID:   fmt.Appendf(nil, "ev-%07d", i),
			UserID:    fmt.Appendf(nil, "user-%06d", i%users),
			ItemID:    fmt.Appendf(nil, "item-%05d", i%997),
			Type:      uint8(i % 4),
			TsMs:      1795838901123 + int64(i)*10,
			SessionID: fmt.Appendf(nil, "s-%d", i%50),
			Price:     float64(i%100) + 0.99,
			HasPrice:  true,
			Category:  []byte("shoes"),
		}
		if i%3 == 0 {
			ev.HasPrice, ev.SessionID = false, nil
		}
		if i%5 == 0 {
			ev.Type, ev.ItemID, ev.Query = 4, nil, []byte("red shoes")
		}
		b.Append(&ev, int32(i%8), int64(i), ev.TsMs+5)
	}
	return &schemas.EventBatch{Topic: "clickstream.events", Events: b.NewRecord()}
}

// checkContextErrors checks how a sink's write reports its context ending:
// a cancelled context is the caller's decision (context.Canceled, never
// ErrUnavailable, so the pipeline does not retry), an expired deadline is
// an outage (ErrUnavailable wrapping context.DeadlineExceeded).
func checkContextErrors(t *testing.T, write func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := write(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("canceled context: error = %v; want context.Canceled, not ErrUnavailable", err)
	}
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	if err := write(expired); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired deadline: error = %v; want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
}
