package embedded

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
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
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

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

// ApacheKafkaConfig describes a real Apache Kafka cluster in KRaft mode: each
// node is a combined broker and controller, so the controller quorum has as
// many voters as there are nodes.
type ApacheKafkaConfig struct {
	// Dir holds one directory per node (node-1, node-2, ...) with its
	// server.properties, log4j2.properties, data/ and log/. It must be set.
	// A cluster started again on the Dir of an earlier one keeps its data
	// and cluster id (the ports are new).
	Dir string `yaml:"dir"`
	// Brokers is the number of nodes, 1 to 9; 0 means 1.
	Brokers int `yaml:"brokers"`
	// Partitions is the partition count of Topics and of topics that are
	// created automatically (num.partitions); 0 means 8.
	Partitions int `yaml:"partitions"`
	// Topics are created at start-up, if missing, with Partitions,
	// ReplicationFactor and MinInsyncReplicas; Start returns once each of
	// their partitions has a leader and a full ISR.
	Topics []string `yaml:"topics"`
	// ReplicationFactor is the replication factor of Topics and the
	// broker's default.replication.factor; 0 means Brokers. The internal
	// topics (__consumer_offsets, __transaction_state) always have
	// Brokers replicas.
	ReplicationFactor int `yaml:"replication_factor"`
	// MinInsyncReplicas is min.insync.replicas of the brokers and of
	// Topics: how many replicas must have a write before acks=all succeeds.
	// 0 means ReplicationFactor-1, at least 1 (2 for 3 replicas).
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// HeapMB is each node's JVM heap (-Xmx) in MiB; 0 means 512.
	HeapMB int `yaml:"heap_mb"`
	// LibsDir is the directory of the broker's jars; empty means the
	// RECSTREAM_KAFKA_LIBS environment variable, then .deps/kafka/libs in
	// the working directory or the nearest directory above it that has one
	// (where `make setup` puts them).
	LibsDir string `yaml:"libs_dir"`
	// ServerProperties adds or overrides broker settings of every node
	// (for example unclean.leader.election.enable for a drill). Empty adds
	// nothing. Listeners, node ids and directories cannot be overridden.
	ServerProperties map[string]string `yaml:"server_properties"`
}

// Defaults returns c with each zero field set to its documented default.
func (c ApacheKafkaConfig) Defaults() ApacheKafkaConfig {
	c.Brokers = cmp.Or(c.Brokers, 1)
	c.Partitions = cmp.Or(c.Partitions, 8)
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, c.Brokers)
	c.MinInsyncReplicas = cmp.Or(c.MinInsyncReplicas, max(1, c.ReplicationFactor-1))
	c.HeapMB = cmp.Or(c.HeapMB, 512)
	return c
}

// fixedServerProperties are the settings ServerProperties must not touch:
// changing them would break the cluster's wiring or its directories.
var fixedServerProperties = []string{
	"process.roles", "node.id", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
	"listeners", "advertised.listeners", "listener.security.protocol.map",
	"controller.listener.names", "inter.broker.listener.name", "log.dirs", "log.dir", "metadata.log.dir",
}

// Validate reports the first invalid field of c (after Defaults), naming
// its yaml key.
func (c ApacheKafkaConfig) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("dir: must be set")
	case strings.ContainsAny(c.Dir, ",\\\n\r"):
		// The path goes into server.properties (log.dirs is a list) and
		// log4j2.properties unescaped.
		return fmt.Errorf("dir: must not contain a comma, backslash or line break, got %q", c.Dir)
	case c.Brokers < 1 || c.Brokers > 9:
		return fmt.Errorf("brokers: must be between 1 and 9, got %d", c.Brokers)
	case c.Partitions < 1:
		return fmt.Errorf("partitions: must be > 0, got %d", c.Partitions)
	case c.ReplicationFactor < 1 || c.ReplicationFactor > c.Brokers:
		return fmt.Errorf("replication_factor: must be between 1 and brokers (%d), got %d", c.Brokers, c.ReplicationFactor)
	case c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > c.ReplicationFactor:
		return fmt.Errorf("min_insync_replicas: must be between 1 and replication_factor (%d), got %d",
			c.ReplicationFactor, c.MinInsyncReplicas)
	case c.HeapMB < 128:
		return fmt.Errorf("heap_mb: must be >= 128, got %d", c.HeapMB)
	}
	for _, t := range c.Topics {
		if t == "" {
			return errors.New("topics: a topic name is empty")
		}
	}
	for k, v := range c.ServerProperties {
		if slices.Contains(fixedServerProperties, k) {
			return fmt.Errorf("server_properties: %s is set by the cluster itself and cannot be overridden", k)
		}
		if strings.ContainsAny(k+v, "\n\r") || k == "" {
			return fmt.Errorf("server_properties: %q: key must be non-empty and neither key nor value may hold a line break", k)
		}
	}
	return nil
}

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

// apacheKafkaNode is one node's process and its fixed places.
type apacheKafkaNode struct {
	id             int // node.id, 1-based
	dir            string
	brokerPort     int
	controllerPort int

	mu        sync.Mutex
	cmd       *exec.Cmd     // nil when not running
	exited    chan struct{} // closed when cmd has exited
	logOffset int64         // size of log/server.log when cmd started
}

func (n *apacheKafkaNode) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.brokerPort))
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

// ApacheKafkaLibs returns the directory of the broker's jars: configured
// when set, else the RECSTREAM_KAFKA_LIBS environment variable, else
// .deps/kafka/libs in the working directory or the nearest directory above
// it. The error says to run make setup when none has the jars.
func ApacheKafkaLibs(configured string) (string, error) {
	hasJars := func(dir string) bool {
		m, _ := filepath.Glob(filepath.Join(dir, "kafka_2.13-*.jar"))
		return len(m) > 0
	}
	for _, named := range []struct{ what, path string }{
		{"libs_dir", configured},
		{ApacheKafkaLibsEnv, os.Getenv(ApacheKafkaLibsEnv)},
	} {
		if named.path == "" {
			continue
		}
		if !hasJars(named.path) {
			return "", fmt.Errorf("apache kafka jars: %s names %s, which has no kafka_2.13-*.jar: run make setup", named.what, named.path)
		}
		return filepath.Abs(named.path)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find apache kafka jars: %w", err)
	}
	for dir := wd; ; {
		if p := filepath.Join(dir, apacheKafkaLibsRelPath); hasJars(p) {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("apache kafka jars: libs_dir and %s are unset and no %s in %s or above it: run make setup",
		ApacheKafkaLibsEnv, apacheKafkaLibsRelPath, wd)
}

// javaBinary finds java in $JAVA_HOME/bin, then on PATH.
func javaBinary() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	return "", errors.New("java not found in $JAVA_HOME/bin or on PATH: run make setup")
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
func (k *ApacheKafka) WaitInSync(ctx context.Context, topics ...string) error {
	cl, err := k.adminClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	for {
		var details kadm.TopicDetails
		if len(topics) == 0 {
			details, err = adm.ListTopicsWithInternal(ctx)
		} else {
			details, err = adm.ListTopics(ctx, topics...)
		}
		if err == nil {
			if last = notInSync(details, topics); last == "" {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for in-sync replicas of %v: %w (last: %s)", topics, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

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

// existingClusterID returns the cluster.id of a node formatted by an earlier
// cluster on the same Dir, or "".
func (k *ApacheKafka) existingClusterID() (string, error) {
	for _, n := range k.nodes {
		b, err := os.ReadFile(filepath.Join(n.dir, "data", "meta.properties"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read kafka node %d meta.properties: %w", n.id, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster.id="); ok {
				return v, nil
			}
		}
	}
	return "", nil
}

// newKafkaUUID returns a random id in Kafka's Uuid form: 16 bytes, base64url
// without padding. Kafka's own generator never starts one with '-' (a
// command line would take it for a flag); neither does this.
func newKafkaUUID() (string, error) {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate kafka cluster id: %w", err)
		}
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id, nil
		}
	}
}

// pickPorts chooses two free loopback ports per node. All listeners are held
// open until every port is chosen, so no two nodes get the same port.
func (k *ApacheKafka) pickPorts() error {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	next := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port for kafka: %w", err)
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	for _, n := range k.nodes {
		if n.brokerPort, err = next(); err != nil {
			return err
		}
		if n.controllerPort, err = next(); err != nil {
			return err
		}
	}
	return nil
}

// writeConfigs writes every node's server.properties and log4j2.properties.
func (k *ApacheKafka) writeConfigs() error {
	voters := make([]string, len(k.nodes))
	for i, n := range k.nodes {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", n.id, n.controllerPort)
	}
	for _, n := range k.nodes {
		props := k.serverProperties(n, strings.Join(voters, ","))
		if err := os.WriteFile(filepath.Join(n.dir, "server.properties"), []byte(props), 0o644); err != nil {
			return fmt.Errorf("write kafka node %d server.properties: %w", n.id, err)
		}
		l4j := strings.ReplaceAll(log4j2Properties, "{{LOG}}", filepath.Join(n.dir, "log"))
		if err := os.WriteFile(filepath.Join(n.dir, "log4j2.properties"), []byte(l4j), 0o644); err != nil {
			return fmt.Errorf("write kafka node %d log4j2.properties: %w", n.id, err)
		}
	}
	return nil
}

// serverProperties renders node n's broker configuration. The controller
// quorum is static (controller.quorum.voters): every node's address is known
// before any starts, and a static quorum needs no directory ids at format
// time, so a node's ports can change between starts of a cluster on the
// same Dir.
func (k *ApacheKafka) serverProperties(n *apacheKafkaNode, voters string) string {
	c := k.cfg
	internalISR := min(c.MinInsyncReplicas, c.Brokers)
	kv := [][2]string{
		{"process.roles", "broker,controller"},
		{"node.id", strconv.Itoa(n.id)},
		{"controller.quorum.voters", voters},
		{"listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", n.brokerPort, n.controllerPort)},
		{"advertised.listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", n.brokerPort)},
		{"listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"},
		{"controller.listener.names", "CONTROLLER"},
		{"inter.broker.listener.name", "PLAINTEXT"},
		{"log.dirs", filepath.Join(n.dir, "data")},

		{"num.partitions", strconv.Itoa(c.Partitions)},
		{"default.replication.factor", strconv.Itoa(c.ReplicationFactor)},
		{"min.insync.replicas", strconv.Itoa(c.MinInsyncReplicas)},
		{"auto.create.topics.enable", "true"},
		{"offsets.topic.replication.factor", strconv.Itoa(c.Brokers)},
		{"offsets.topic.num.partitions", strconv.Itoa(apacheKafkaInternalPartitions)},
		{"transaction.state.log.replication.factor", strconv.Itoa(c.Brokers)},
		{"transaction.state.log.min.isr", strconv.Itoa(internalISR)},
		{"transaction.state.log.num.partitions", strconv.Itoa(apacheKafkaInternalPartitions)},
		{"share.coordinator.state.topic.replication.factor", strconv.Itoa(c.Brokers)},
		{"share.coordinator.state.topic.min.isr", strconv.Itoa(internalISR)},
		// A group's first member gets its partitions at once instead of
		// after the default 3 s wait for more members.
		{"group.initial.rebalance.delay.ms", "0"},
		// A killed node is fenced, and its leaderships move, within 4 s
		// instead of the default 9 s; heartbeats every 500 ms keep a live
		// node well inside that on a loaded machine.
		{"broker.heartbeat.interval.ms", "500"},
		{"broker.session.timeout.ms", "4000"},
		// Threads and buffers for a 2-core test machine and a small heap:
		// the log cleaner (compacted output topic) would otherwise take
		// 128 MiB of it for its dedupe buffer.
		{"num.network.threads", "2"},
		{"num.io.threads", "4"},
		{"num.recovery.threads.per.data.dir", "1"},
		{"log.cleaner.dedupe.buffer.size", strconv.Itoa(16 << 20)},
	}
	var b strings.Builder
	b.WriteString("# Written by recstream's internal/embedded; rewritten at every start.\n")
	for _, p := range kv {
		if v, ok := c.ServerProperties[p[0]]; ok {
			p[1] = v
		}
		fmt.Fprintf(&b, "%s=%s\n", p[0], p[1])
	}
	for _, key := range slices.Sorted(maps.Keys(c.ServerProperties)) {
		if !slices.ContainsFunc(kv, func(p [2]string) bool { return p[0] == key }) {
			fmt.Fprintf(&b, "%s=%s\n", key, c.ServerProperties[key])
		}
	}
	return b.String()
}

// log4j2Properties sends each node's log to log/server.log (INFO, two files
// of 20 MiB at most); the JVM's own output goes to log/stdout.log.
const log4j2Properties = `# Written by recstream's internal/embedded; rewritten at every start.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {{LOG}}/server.log
appender.file.filePattern = {{LOG}}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
`

// jvmArgs returns the JVM options of node n (or of a tool run in its
// directory). Start-up dominates a test's use of a broker, so the JIT stops
// at C1 and the serial collector keeps GC threads off the 2 cores: three
// nodes starting at once were ready in 6.5-8 s this way against 11-12.5 s
// with the JVM's defaults (G1, full tiered JIT), and a storage format takes
// 0.5 s instead of about 2 s.
func (k *ApacheKafka) jvmArgs(n *apacheKafkaNode, heapMB int) []string {
	return []string{
		"-Xms64m", "-Xmx" + strconv.Itoa(heapMB) + "m",
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData",
		"-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(n.dir, "log4j2.properties"),
		"-cp", filepath.Join(k.libs, "*"),
	}
}

// format writes meta.properties and the bootstrap metadata of every node not
// formatted yet, with the cluster's id, all nodes at once.
func (k *ApacheKafka) format(ctx context.Context) error {
	errs := make([]error, len(k.nodes))
	var wg sync.WaitGroup
	for i, n := range k.nodes {
		if _, err := os.Stat(filepath.Join(n.dir, "data", "meta.properties")); err == nil {
			continue
		}
		wg.Go(func() {
			args := append(k.jvmArgs(n, 256), "kafka.tools.StorageTool", "format",
				"--cluster-id", k.clusterID, "--config", filepath.Join(n.dir, "server.properties"))
			cmd := exec.CommandContext(ctx, k.java, args...)
			cmd.Dir = n.dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("format kafka node %d storage: %w: %s", n.id, err, jvmReason(string(out)))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startNode launches node n's JVM; it does not wait for it to be ready.
func (k *ApacheKafka) startNode(n *apacheKafkaNode) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("start kafka node %d on %s: already running as pid %d", n.id, n.addr(), n.cmd.Process.Pid)
	}
	out, err := os.OpenFile(filepath.Join(n.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open kafka node %d stdout log: %w", n.id, err)
	}
	defer out.Close() // the child holds its own descriptor
	// What this run logs starts here: a restarted node appends to the
	// log of its earlier runs.
	n.logOffset = fileSize(filepath.Join(n.dir, "log", "server.log"))
	args := append(k.jvmArgs(n, k.cfg.HeapMB), "kafka.Kafka", filepath.Join(n.dir, "server.properties"))
	cmd := exec.Command(k.java, args...)
	cmd.Dir = n.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kafka node %d (%s): %w", n.id, k.java, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a signalled JVM says nothing useful
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	k.log.Info("kafka node starting", zap.Int("node_id", n.id), zap.String("addr", n.addr()),
		zap.Int("pid", cmd.Process.Pid), zap.String("dir", n.dir))
	return nil
}

// waitNodesReady waits until each of nodes answers a metadata request itself
// and lists every running node as a broker. A KRaft broker serves requests
// only once it has caught up with the metadata log and been unfenced, so an
// answer means it is ready. It fails as soon as one of nodes exits, with
// the end of its log; a failure because a port was taken wraps
// errPortTaken.
func (k *ApacheKafka) waitNodesReady(ctx context.Context, nodes []*apacheKafkaNode) error {
	exited := make([]<-chan struct{}, len(nodes))
	offsets := make([]int64, len(nodes))
	for i, n := range nodes {
		n.mu.Lock()
		exited[i], offsets[i] = n.exited, n.logOffset
		n.mu.Unlock()
		if exited[i] == nil {
			return fmt.Errorf("kafka node %d was stopped while starting", n.id)
		}
	}
	ready := make([]bool, len(nodes))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := -1
		var last error
		for i, n := range nodes {
			if ready[i] {
				continue
			}
			select {
			case <-exited[i]:
				err := fmt.Errorf("start kafka node %d on %s: process exited; log: %s", n.id, n.addr(), n.logTail(offsets[i]))
				if n.logSays(offsets[i], "Address already in use") {
					err = fmt.Errorf("%w: %w", errPortTaken, err)
				}
				return err
			default:
			}
			if last = k.nodeSeesCluster(ctx, n); last != nil {
				pending = i
				continue
			}
			ready[i] = true
			k.log.Info("kafka node ready", zap.Int("node_id", n.id), zap.String("addr", n.addr()))
		}
		if pending < 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n := nodes[pending]
			return fmt.Errorf("start kafka node %d on %s: not ready: %w (last: %v); log: %s",
				n.id, n.addr(), ctx.Err(), last, n.logTail(offsets[pending]))
		case <-tick.C:
		}
	}
}

// errPortTaken marks a start that failed because another process took a
// port between pickPorts and the node's bind.
var errPortTaken = errors.New("a port was taken by another process")

// logSays reports whether node n's server.log holds s after offset.
func (n *apacheKafkaNode) logSays(offset int64, s string) bool {
	b := readFrom(filepath.Join(n.dir, "log", "server.log"), offset)
	return b != nil && strings.Contains(string(b), s)
}

// nodeSeesCluster asks node n itself (not any broker) for metadata and checks
// that every running node is among its brokers.
func (k *ApacheKafka) nodeSeesCluster(ctx context.Context, n *apacheKafkaNode) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.addr()), kgo.DialTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := cl.SeedBrokers()[0].Request(reqCtx, req)
	if err != nil {
		return err
	}
	seen := map[int32]bool{}
	for _, b := range resp.(*kmsg.MetadataResponse).Brokers {
		seen[b.NodeID] = true
	}
	for _, other := range k.nodes {
		if other.running() && !seen[int32(other.id)] {
			return fmt.Errorf("node %d does not see node %d yet", n.id, other.id)
		}
	}
	return nil
}

func (n *apacheKafkaNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

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

// stopNode signals node n's process group and waits for it to exit,
// escalating to SIGKILL after grace.
func (k *ApacheKafka) stopNode(n *apacheKafkaNode, sig syscall.Signal, grace time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	pid := n.cmd.Process.Pid
	exited := n.exited
	defer func() { n.cmd, n.exited = nil, nil }()
	select {
	case <-exited:
		// Already gone and reaped: its pid may belong to another process
		// by now, so send nothing.
		return nil
	default:
	}
	began := time.Now()
	// A negative pid signals the whole process group (Setpgid made pid its id).
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal kafka node %d pid %d with %v: %w", n.id, pid, sig, err)
	}
	if sig != syscall.SIGKILL {
		select {
		case <-exited:
			k.log.Info("kafka node stopped", zap.Int("node_id", n.id), zap.Int("pid", pid),
				zap.Duration("took", time.Since(began)))
			return nil
		case <-time.After(grace):
			k.log.Warn("kafka node did not stop in time; killing it", zap.Int("node_id", n.id),
				zap.Int("pid", pid), zap.Duration("grace", grace))
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill kafka node %d pid %d: %w", n.id, pid, err)
			}
		}
	}
	<-exited
	k.log.Info("kafka node killed", zap.Int("node_id", n.id), zap.Int("pid", pid))
	return nil
}

// killAll kills every node; for cleaning up after a failed start.
func (k *ApacheKafka) killAll() {
	for _, n := range k.nodes {
		_ = k.stopNode(n, syscall.SIGKILL, 0)
	}
}

// logTail returns what node n said about a failure since offset of its
// server.log: its last ERROR or FATAL entries with the headlines of their
// exceptions (the stack frames left out), else its last lines, and the
// reason on stdout.log (the JVM's own errors, such as a missing class).
func (n *apacheKafkaNode) logTail(offset int64) string {
	var msgs []string
	if b := readFrom(filepath.Join(n.dir, "log", "server.log"), offset); b != nil {
		var entries []string
		inError := false
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "["): // a new log entry
				inError = strings.Contains(line, "] ERROR ") || strings.Contains(line, "] FATAL ")
				if inError {
					entries = append(entries, line)
				}
			case inError && isExceptionHeadline(line):
				entries[len(entries)-1] += " / " + strings.TrimSpace(line)
			}
		}
		if len(entries) == 0 {
			entries = strings.Split(strings.TrimSpace(string(b)), "\n")
		}
		msgs = append(msgs, lastLines(strings.Join(entries, "\n"), 3))
	}
	if f, err := os.Open(filepath.Join(n.dir, "log", "stdout.log")); err == nil {
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() > 4096 {
			_, _ = f.Seek(-4096, io.SeekEnd)
		}
		if b, err := io.ReadAll(f); err == nil && len(b) > 0 {
			msgs = append(msgs, jvmReason(string(b)))
		}
	}
	return strings.Join(slices.DeleteFunc(msgs, func(s string) bool { return s == "" }), " | ")
}

// isExceptionHeadline tells the lines of a Java stack trace that name an
// exception ("java.io.IOException: ...", "Caused by: ...") from its frames
// ("\tat ...", "\t... 5 more").
func isExceptionHeadline(line string) bool {
	l := strings.TrimSpace(line)
	return l != "" && !strings.HasPrefix(l, "at ") && !strings.HasPrefix(l, "...")
}

// jvmReason returns the lines of a JVM's output that say why it failed: an
// uncaught exception's headline and its causes, without the stack frames;
// else its last 3 lines.
func jvmReason(out string) string {
	var reason []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Exception in thread") || strings.HasPrefix(l, "Caused by:") || strings.HasPrefix(l, "Error:") {
			reason = append(reason, l)
		}
	}
	if len(reason) > 0 {
		return lastLines(strings.Join(reason, "\n"), 3)
	}
	return lastLines(out, 3)
}

// lastLines returns the last n non-empty lines of s joined by " / ", each
// cut to 1000 bytes.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 1000 {
				l = l[:1000] + "..."
			}
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
