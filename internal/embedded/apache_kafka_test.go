package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

func TestApacheKafkaConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  ApacheKafkaConfig
		want string // "" means valid
	}{
		{"defaults", ApacheKafkaConfig{Dir: "k"}, ""},
		{"three nodes", ApacheKafkaConfig{Dir: "k", Brokers: 3, MinInsyncReplicas: 2}, ""},
		{"no dir", ApacheKafkaConfig{}, "dir: must be set"},
		{"comma in dir", ApacheKafkaConfig{Dir: "a,b"}, "dir: must not contain"},
		{"too many brokers", ApacheKafkaConfig{Dir: "k", Brokers: 10}, "brokers: must be between 1 and 9, got 10"},
		{"negative partitions", ApacheKafkaConfig{Dir: "k", Partitions: -1}, "partitions: must be > 0, got -1"},
		{"replication above brokers", ApacheKafkaConfig{Dir: "k", ReplicationFactor: 2}, "replication_factor: must be between 1 and brokers (1), got 2"},
		{"min isr above replication", ApacheKafkaConfig{Dir: "k", Brokers: 3, ReplicationFactor: 2, MinInsyncReplicas: 3}, "min_insync_replicas: must be between 1 and replication_factor (2), got 3"},
		{"small heap", ApacheKafkaConfig{Dir: "k", HeapMB: 64}, "heap_mb: must be >= 128, got 64"},
		{"empty topic", ApacheKafkaConfig{Dir: "k", Topics: []string{"a", ""}}, "topics: a topic name is empty"},
		{"fixed property", ApacheKafkaConfig{Dir: "k", ServerProperties: map[string]string{"listeners": "x"}}, "server_properties: listeners is set by the cluster"},
		{"line break in property", ApacheKafkaConfig{Dir: "k", ServerProperties: map[string]string{"a": "b\nlisteners=x"}}, "server_properties: \"a\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Defaults().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestApacheKafkaConfigDefaults(t *testing.T) {
	tests := []struct {
		in                       ApacheKafkaConfig
		brokers, rf, minISR, hep int
	}{
		{ApacheKafkaConfig{}, 1, 1, 1, 512},
		{ApacheKafkaConfig{Brokers: 3}, 3, 3, 2, 512},
		{ApacheKafkaConfig{Brokers: 3, ReplicationFactor: 2, HeapMB: 256}, 3, 2, 1, 256},
	}
	for _, tt := range tests {
		got := tt.in.Defaults()
		if got.Brokers != tt.brokers || got.ReplicationFactor != tt.rf || got.MinInsyncReplicas != tt.minISR ||
			got.HeapMB != tt.hep || got.Partitions != 8 {
			t.Errorf("%+v.Defaults() = %+v", tt.in, got)
		}
	}
}

func TestApacheKafkaLibsMissing(t *testing.T) {
	empty := t.TempDir()
	if _, err := ApacheKafkaLibs(empty); err == nil || !strings.Contains(err.Error(), "run make setup") {
		t.Fatalf("ApacheKafkaLibs(empty dir) = %v, want an error saying run make setup", err)
	}
	t.Setenv(ApacheKafkaLibsEnv, empty)
	if _, err := ApacheKafkaLibs(""); err == nil || !strings.Contains(err.Error(), ApacheKafkaLibsEnv) {
		t.Fatalf("ApacheKafkaLibs with %s set to an empty dir = %v, want an error naming it", ApacheKafkaLibsEnv, err)
	}
}

// startApacheKafka starts a cluster under a test's temporary directory and
// stops it when the test ends.
func startApacheKafka(t *testing.T, cfg ApacheKafkaConfig) *ApacheKafka {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	k, err := StartApacheKafka(ctx, cfg, zaptest.NewLogger(t).Named("apache-kafka"))
	if err != nil {
		t.Fatalf("StartApacheKafka: %v", err)
	}
	t.Logf("%d-node apache kafka ready in %s", k.Nodes(), time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// newClient returns a client that refreshes its metadata at most every
// 100 ms instead of 5 s, so that kadm's answers (served from that cache) and
// the producer follow leadership moves at once.
func newClient(t *testing.T, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceN writes n records "prefix-i" to topic with acks=all (franz-go's
// default, with idempotence) and fails the test on any error.
func produceN(ctx context.Context, t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Sprintf("%s-%d", prefix, i)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", n, topic, err)
	}
}

// consumeValues reads topic from the start until it has want records.
func consumeValues(ctx context.Context, t *testing.T, addrs []string, topic string, want int) []string {
	t.Helper()
	cl := newClient(t, addrs, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(got), want, topic, ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	return got
}

func wantValues(prefix string, n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	slices.Sort(v)
	return v
}

// TestApacheKafkaSingleBroker produces and consumes over TCP, checks the
// process layout, and starts a second cluster on the first one's directory
// to check that the data and the cluster id survive.
func TestApacheKafkaSingleBroker(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := startApacheKafka(t, ApacheKafkaConfig{Dir: dir, Partitions: 4, Topics: []string{"events"}})

	if got := k.Addrs(); len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
		t.Fatalf("Addrs() = %v, want one 127.0.0.1 address", got)
	}
	pid := k.PID(0)
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("node process group = %d (%v), want its own group %d", pgid, err, pid)
	}
	adm := kadm.NewClient(newClient(t, k.Addrs()))
	topics, err := adm.ListTopics(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topics["events"].Partitions); n != 4 {
		t.Fatalf("topic events has %d partitions, want 4", n)
	}

	produceN(ctx, t, newClient(t, k.Addrs()), "events", "a", 500)
	if got, want := consumeValues(ctx, t, k.Addrs(), "events", 500), wantValues("a", 500); !slices.Equal(got, want) {
		t.Fatalf("consumed %d records, want the %d produced", len(got), len(want))
	}

	clusterID := k.ClusterID()
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("node pid %d still alive after Close", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "node-1", "log", "server.log")); err != nil {
		t.Errorf("no server log: %v", err)
	}

	again := startApacheKafka(t, ApacheKafkaConfig{Dir: dir, Partitions: 4, Topics: []string{"events"}})
	if again.ClusterID() != clusterID {
		t.Errorf("cluster id after a restart on the same dir = %s, want %s", again.ClusterID(), clusterID)
	}
	if got, want := consumeValues(ctx, t, again.Addrs(), "events", 500), wantValues("a", 500); !slices.Equal(got, want) {
		t.Fatalf("after a restart: consumed %d records, want the %d produced before it", len(got), len(want))
	}
}

// TestApacheKafkaThreeBrokers runs one 3-node cluster (replication factor 3,
// min.insync.replicas 2) through a crash and a restart of the node that
// leads a partition: acks=all producing goes on with two nodes, and the
// restarted node rejoins every ISR.
func TestApacheKafkaThreeBrokers(t *testing.T) {
	const topic = "replicated"
	k := startApacheKafka(t, ApacheKafkaConfig{Brokers: 3, Partitions: 3, Topics: []string{topic}, MinInsyncReplicas: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, k.Addrs()))
	// One producer for the whole test: its metadata must follow the
	// leadership moves, as a pipeline's would.
	producer := newClient(t, k.Addrs(), kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(time.Minute))
	produced := 0

	victim := -1
	t.Run("topic is fully replicated", func(t *testing.T) {
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range topics[topic].Partitions.Sorted() {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 {
				t.Errorf("partition %d: replicas %v, isr %v, want 3 of each", p.Partition, p.Replicas, p.ISR)
			}
		}
		victim = int(topics[topic].Partitions[0].Leader) - 1
		rc, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		c, err := rc.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range c.Configs {
			if kv.Key == "min.insync.replicas" && kv.MaybeValue() != "2" {
				t.Errorf("min.insync.replicas = %q, want 2", kv.MaybeValue())
			}
		}
		produceN(ctx, t, producer, topic, "before", 300)
		produced += 300
	})
	if victim < 0 || victim >= k.Nodes() {
		t.Fatalf("no leader of partition 0 to kill (got node index %d)", victim)
	}

	t.Run("acks=all goes on with a node killed", func(t *testing.T) {
		began := time.Now()
		if err := k.KillNode(victim); err != nil {
			t.Fatal(err)
		}
		produceN(ctx, t, producer, topic, "during", 300)
		produced += 300
		t.Logf("killed node %d (leader of partition 0); 300 acks=all records took %s",
			k.NodeID(victim), time.Since(began).Round(time.Millisecond))
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range topics[topic].Partitions.Sorted() {
			if p.Leader == k.NodeID(victim) || slices.Contains(p.ISR, k.NodeID(victim)) {
				t.Errorf("partition %d: leader %d, isr %v still name the killed node %d",
					p.Partition, p.Leader, p.ISR, k.NodeID(victim))
			}
			if len(p.ISR) < 2 {
				t.Errorf("partition %d: isr %v, want the 2 live nodes", p.Partition, p.ISR)
			}
		}
	})

	t.Run("the restarted node rejoins", func(t *testing.T) {
		began := time.Now()
		if err := k.StartNode(ctx, victim); err != nil {
			t.Fatal(err)
		}
		if err := k.WaitInSync(ctx, topic); err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d restarted and back in every ISR after %s", k.NodeID(victim), time.Since(began).Round(time.Millisecond))
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range topics[topic].Partitions.Sorted() {
			if !slices.Contains(p.ISR, k.NodeID(victim)) {
				t.Errorf("partition %d: isr %v lacks the restarted node %d", p.Partition, p.ISR, k.NodeID(victim))
			}
		}
	})

	t.Run("a graceful stop keeps acks=all working", func(t *testing.T) {
		// Stop another node than the one that just caught up: the
		// restarted node must now hold a full copy for reads to work.
		other := (victim + 1) % k.Nodes()
		began := time.Now()
		if err := k.StopNode(other); err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d stopped gracefully in %s", k.NodeID(other), time.Since(began).Round(time.Millisecond))
		produceN(ctx, t, producer, topic, "stopped", 300)
		produced += 300
		got := consumeValues(ctx, t, k.Addrs(), topic, produced)
		want := slices.Concat(wantValues("before", 300), wantValues("during", 300), wantValues("stopped", 300))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("consumed %d records, want the %d produced", len(got), len(want))
		}
		if err := k.StartNode(ctx, other); err != nil {
			t.Fatal(err)
		}
	})
}

// TestApacheKafkaStartFailure gives the cluster settings it refuses, one
// found when the storage is formatted and one only when the broker starts:
// Start must fail fast with the JVM's own reason and leave no process behind.
func TestApacheKafkaStartFailure(t *testing.T) {
	tests := []struct {
		name  string
		props map[string]string
		want  string
	}{
		{"refused by format", map[string]string{"num.io.threads": "0"}, "num.io.threads"},
		{"refused by the broker", map[string]string{"authorizer.class.name": "org.example.NoSuchAuthorizer"}, "NoSuchAuthorizer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			began := time.Now()
			k, err := StartApacheKafka(ctx, ApacheKafkaConfig{Dir: dir, ServerProperties: tt.props}, zaptest.NewLogger(t))
			if err == nil {
				k.Close()
				t.Fatalf("StartApacheKafka with %v succeeded, want an error", tt.props)
			}
			t.Logf("failed after %s: %v", time.Since(began).Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not carry the JVM's reason (%s): %v", tt.want, err)
			}
			if pids := processesUnder(t, dir); len(pids) > 0 {
				t.Errorf("processes still running from %s after a failed start: %v", dir, pids)
			}
		})
	}
}

// processesUnder lists the pids whose command line names dir.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// TestApacheKafkaPortTaken gives a node a broker port another process holds,
// as when a probed-free port is taken before the JVM binds it: the attempt
// must fail with errPortTaken, which makes StartApacheKafka pick other ports.
func TestApacheKafkaPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	k, err := newApacheKafka(ApacheKafkaConfig{Dir: t.TempDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer k.killAll()
	if err := k.pickPorts(); err != nil {
		t.Fatal(err)
	}
	k.nodes[0].brokerPort = taken.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = k.startAttempt(ctx)
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port = %v, want errPortTaken", err)
	}
	t.Logf("start on a taken port: %v", err)
}
