package embedded

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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
)

// What an embedded Apache Kafka node runs from: the broker's jars and the
// JVM, ports, server.properties and log4j2 settings, the KRaft storage format.

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
