package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// ApacheKafka runs a real Apache Kafka cluster (KRaft, combined broker and
// controller nodes) on loopback for tests, the drills and the demo: start,
// stop, kill and restart nodes, wait for topics to be in sync. Its settings
// are in apache_kafka_config.go, its files in apache_kafka_files.go, its node
// processes in apache_kafka_node.go.

// ApacheKafkaLibsEnv names the environment variable that points at the
// directory of the Apache Kafka broker's jars, when they are not in
// .deps/kafka/libs of the working directory or a directory above it.
const ApacheKafkaLibsEnv = "RECSTREAM_KAFKA_LIBS"

// apacheKafkaLibsRelPath is where scripts/kafka.sh fetch puts the jars,
// relative to the repository root.
const apacheKafkaLibsRelPath = ".deps/kafka/libs"

const (
	// apacheKafkaStartTimeout bounds a start when the caller's context has
	// no deadline. One node is ready about 2 s after exec here, three
	// nodes about 5 s (2 cores); a loaded CI machine may need far longer.
	apacheKafkaStartTimeout = 2 * time.Minute
	// apacheKafkaStopTimeout is how long a graceful stop waits after
	// SIGTERM before it sends SIGKILL. A node's controlled shutdown moves
	// its partition leadership away first; when the quorum is already gone
	// (the last nodes of a cluster) it can wait until this runs out.
	apacheKafkaStopTimeout = 20 * time.Second
	// apacheKafkaCloseTimeout is how long Close waits after SIGTERM. When
	// every node stops at once, the last controllers lose their quorum:
	// their Raft clients wait about 5 s to resign to voters that are gone
	// and a broker's controlled shutdown can wait for a controller that
	// never answers; a closing cluster's data needs neither.
	apacheKafkaCloseTimeout = 10 * time.Second
	// apacheKafkaInternalPartitions is the partition count of
	// __consumer_offsets and __transaction_state. The broker's default, 50,
	// makes every start create 50 partitions (150 replicas on 3 nodes) on a
	// 2-core machine; 8 is plenty for tests.
	apacheKafkaInternalPartitions = 8
	// apacheKafkaWarmupGroup is the group whose coordinator Start looks up,
	// which makes the broker create __consumer_offsets while every node is
	// up: a drill that kills a node right after Start then still finds the
	// offsets topic fully replicated.
	apacheKafkaWarmupGroup = "recstream.embedded.warmup"
)

// ApacheKafka is a real Apache Kafka cluster (KRaft mode) of child
// processes, one JVM per node, listening on 127.0.0.1. Each node is a broker
// and a controller; nodes are numbered from 0 in this API (node i has
// node.id i+1).
//
// Each node runs in its own process group, so a terminal's Ctrl-C reaches
// only the parent, and it gets SIGKILL if the parent dies, so a crashed
// test leaves no JVM behind.
//
// Its methods are safe for concurrent use.
type ApacheKafka struct {
	cfg       ApacheKafkaConfig
	java      string
	libs      string
	clusterID string
	log       *zap.Logger
	nodes     []*apacheKafkaNode
}

// StartApacheKafka formats each node's storage (unless an earlier cluster
// on cfg.Dir did), starts every node, and returns once every node is
// unfenced and sees all the others, cfg.Topics exist with a leader and a
// full ISR on every partition, and the group coordinator answers. It gives
// up when ctx ends, or after 2 minutes when ctx has no deadline; then it
// leaves no process behind.
//
// Start-up takes a few seconds: each node is a JVM. Measured on 2 cores,
// topics created: about 1.5-2 s for one node, 5-8 s for three.
//
// A nil log means zap.NewNop().
func StartApacheKafka(ctx context.Context, cfg ApacheKafkaConfig, log *zap.Logger) (*ApacheKafka, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, apacheKafkaStartTimeout)
		defer cancel()
	}
	k, err := newApacheKafka(cfg, log)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	for attempt := 1; ; attempt++ {
		if err = k.pickPorts(); err != nil {
			return nil, err
		}
		err = k.startAttempt(ctx)
		if err == nil {
			break
		}
		k.killAll()
		// The ports were probed free, then closed, so another process can
		// take one before the JVM binds it.
		if attempt == portAttempts || !errors.Is(err, errPortTaken) {
			return nil, err
		}
		k.log.Warn("kafka port taken before the node bound it; trying other ports", zap.Error(err))
	}
	if err := k.prepareTopics(ctx); err != nil {
		k.killAll()
		return nil, err
	}
	k.log.Info("apache kafka ready", zap.Strings("addrs", k.Addrs()), zap.String("cluster_id", k.clusterID),
		zap.Duration("took", time.Since(began)))
	return k, nil
}

// newApacheKafka validates cfg, finds java and the jars, creates the node
// directories and settles the cluster id; it starts nothing.
func newApacheKafka(cfg ApacheKafkaConfig, log *zap.Logger) (*ApacheKafka, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("apache kafka config: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("apache kafka dir %q: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	libs, err := ApacheKafkaLibs(cfg.LibsDir)
	if err != nil {
		return nil, err
	}
	java, err := javaBinary()
	if err != nil {
		return nil, err
	}
	k := &ApacheKafka{cfg: cfg, java: java, libs: libs, log: log}
	for i := range cfg.Brokers {
		nd := filepath.Join(dir, "node-"+strconv.Itoa(i+1))
		for _, d := range []string{"data", "log"} {
			if err := os.MkdirAll(filepath.Join(nd, d), 0o755); err != nil {
				return nil, fmt.Errorf("create kafka node %d %s dir: %w", i+1, d, err)
			}
		}
		k.nodes = append(k.nodes, &apacheKafkaNode{id: i + 1, dir: nd})
	}
	if k.clusterID, err = k.existingClusterID(); err != nil {
		return nil, err
	}
	if k.clusterID == "" {
		if k.clusterID, err = newKafkaUUID(); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// startAttempt writes the configuration for the ports pickPorts chose,
// formats the nodes not formatted yet, starts every node and waits until
// all are ready. On failure the caller kills what it started.
func (k *ApacheKafka) startAttempt(ctx context.Context) error {
	if err := k.writeConfigs(); err != nil {
		return err
	}
	if err := k.format(ctx); err != nil {
		return err
	}
	for _, n := range k.nodes {
		if err := k.startNode(n); err != nil {
			return err
		}
	}
	return k.waitNodesReady(ctx, k.nodes)
}

// Addrs returns every node's broker address, "127.0.0.1:port", in node
// order, stopped nodes included: the ports stay the same across StopNode,
// KillNode and StartNode, so a client seeded with all of them finds the
// nodes that run.
func (k *ApacheKafka) Addrs() []string {
	addrs := make([]string, len(k.nodes))
	for i, n := range k.nodes {
		addrs[i] = n.addr()
	}
	return addrs
}

// AddrList returns the addresses joined by commas, as configuration takes them.
func (k *ApacheKafka) AddrList() string { return strings.Join(k.Addrs(), ",") }

// Addr returns node i's broker address; i must be in [0, Nodes()).
func (k *ApacheKafka) Addr(i int) string { return k.nodes[i].addr() }

// Nodes returns the number of nodes.
func (k *ApacheKafka) Nodes() int { return len(k.nodes) }

// NodeID returns node i's node.id (i+1), as metadata and ISR lists name it.
func (k *ApacheKafka) NodeID(i int) int32 { return int32(k.nodes[i].id) }

// PID returns the process id of node i, or 0 when it is stopped; i must be
// in [0, Nodes()).
func (k *ApacheKafka) PID(i int) int {
	n := k.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// ClusterID returns the KRaft cluster id the storage was formatted with.
func (k *ApacheKafka) ClusterID() string { return k.clusterID }

// StopNode sends SIGTERM to node i and waits for it to exit: the node moves
// its partition leadership away and shuts down cleanly. After 20 s it sends
// SIGKILL. Stopping a stopped node is a no-op.
func (k *ApacheKafka) StopNode(i int) error {
	if err := k.checkNode(i); err != nil {
		return err
	}
	return k.stopNode(k.nodes[i], syscall.SIGTERM, apacheKafkaStopTimeout)
}

// KillNode sends SIGKILL to node i and waits for it to exit, as a crash
// would leave it: the controller fences it once its session times out
// (broker.session.timeout.ms, 4 s here) and moves its leaderships. Killing
// a stopped node is a no-op.
func (k *ApacheKafka) KillNode(i int) error {
	if err := k.checkNode(i); err != nil {
		return err
	}
	return k.stopNode(k.nodes[i], syscall.SIGKILL, 0)
}

// StartNode starts a stopped node i again on the same ports and
// directories, and returns once it is unfenced and sees every other running
// node. Its replicas may still be catching up: WaitInSync waits for them.
func (k *ApacheKafka) StartNode(ctx context.Context, i int) error {
	if err := k.checkNode(i); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, apacheKafkaStartTimeout)
		defer cancel()
	}
	n := k.nodes[i]
	if err := k.startNode(n); err != nil {
		return err
	}
	if err := k.waitNodesReady(ctx, []*apacheKafkaNode{n}); err != nil {
		_ = k.stopNode(n, syscall.SIGKILL, 0)
		return err
	}
	return nil
}

// Close stops every node at once with SIGTERM and waits for them to exit,
// sending SIGKILL to any still running after 10 s. The data stays in Dir.
// It takes about 0.5 s for one node and 5.5 s for three (the last
// controller waits for a quorum that has gone). Closing twice is a no-op.
func (k *ApacheKafka) Close() error {
	errs := make([]error, len(k.nodes))
	var wg sync.WaitGroup
	for i, n := range k.nodes {
		wg.Go(func() { errs[i] = k.stopNode(n, syscall.SIGTERM, apacheKafkaCloseTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitInSync waits until every partition of topics (all topics, internal
// ones included, when none is named) has a leader and every replica in its
// ISR, or ctx ends. A node just restarted with StartNode rejoins the ISR of
// its partitions once it has caught up with their leaders.
//
// The answer must hold in inSyncPolls metadata reads in a row: each read may
// go to another broker, and a broker's metadata can trail the controller's
// for a moment, so one full ISR seen once was sometimes gone on the next read.
func (k *ApacheKafka) WaitInSync(ctx context.Context, topics ...string) error {
	cl, err := k.adminClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	agreed := 0
	for {
		var details kadm.TopicDetails
		if len(topics) == 0 {
			details, err = adm.ListTopicsWithInternal(ctx)
		} else {
			details, err = adm.ListTopics(ctx, topics...)
		}
		if err == nil {
			if last = notInSync(details, topics); last == "" {
				if agreed++; agreed == inSyncPolls {
					return nil
				}
			} else {
				agreed = 0
			}
		} else {
			last, agreed = err.Error(), 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for in-sync replicas of %v: %w (last: %s)", topics, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// inSyncPolls is how many metadata reads in a row WaitInSync needs.
const inSyncPolls = 3

// notInSync describes the first partition that lacks a leader or has a
// replica out of its ISR, or returns "" when there is none.
func notInSync(details kadm.TopicDetails, want []string) string {
	for _, t := range want {
		if _, ok := details[t]; !ok {
			return "topic " + t + " not in metadata"
		}
	}
	for _, name := range slices.Sorted(maps.Keys(details)) {
		td := details[name]
		if td.Err != nil {
			return fmt.Sprintf("topic %s: %v", name, td.Err)
		}
		if len(td.Partitions) == 0 {
			return fmt.Sprintf("topic %s: no partitions yet", name)
		}
		for _, p := range td.Partitions.Sorted() {
			switch {
			case p.Err != nil:
				return fmt.Sprintf("%s/%d: %v", name, p.Partition, p.Err)
			case p.Leader < 0:
				return fmt.Sprintf("%s/%d: no leader", name, p.Partition)
			case len(p.ISR) != len(p.Replicas):
				return fmt.Sprintf("%s/%d: isr %v of replicas %v", name, p.Partition, p.ISR, p.Replicas)
			}
		}
	}
	return ""
}

func (k *ApacheKafka) checkNode(i int) error {
	if i < 0 || i >= len(k.nodes) {
		return fmt.Errorf("kafka node %d: the cluster has nodes 0 to %d", i, len(k.nodes)-1)
	}
	return nil
}

// adminClient returns a client seeded with every node's address.
func (k *ApacheKafka) adminClient(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(k.Addrs()...),
		kgo.DialTimeout(time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		// kadm answers metadata questions (ListTopics) from the client's
		// cache while it is younger than this, 5 s by default: a wait for
		// an ISR to grow would see the change up to 5 s late.
		kgo.MetadataMinAge(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka admin client for %v: %w", k.Addrs(), err)
	}
	return cl, nil
}

// errPortTaken marks a start that failed because another process took a
// port between pickPorts and the node's bind.
var errPortTaken = errors.New("a port was taken by another process")

// prepareTopics creates cfg.Topics, makes the broker create
// __consumer_offsets by looking up a group coordinator, and waits until
// every partition of every topic is fully in sync.
func (k *ApacheKafka) prepareTopics(ctx context.Context) error {
	cl, err := k.adminClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if len(k.cfg.Topics) > 0 {
		minISR := strconv.Itoa(k.cfg.MinInsyncReplicas)
		resp, err := adm.CreateTopics(ctx, int32(k.cfg.Partitions), int16(k.cfg.ReplicationFactor),
			map[string]*string{"min.insync.replicas": &minISR}, k.cfg.Topics...)
		if err != nil {
			return fmt.Errorf("create kafka topics %v: %w", k.cfg.Topics, err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create kafka topic %s (%d partitions, replication factor %d): %w",
					r.Topic, k.cfg.Partitions, k.cfg.ReplicationFactor, r.Err)
			}
		}
	}
	for {
		// COORDINATOR_NOT_AVAILABLE while the offsets topic is created.
		resp := adm.FindGroupCoordinators(ctx, apacheKafkaWarmupGroup)
		if resp.Ok() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the kafka group coordinator: %w (last: %v)", ctx.Err(), resp.Error())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return k.WaitInSync(ctx)
}
