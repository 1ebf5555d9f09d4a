package embedded

import (
	"context"
	"fmt"
	"io"
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

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// One embedded Apache Kafka node as a process: start, readiness, stop and
// kill, and the log lines that explain a failure.

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
	return stopProcessGroup(pid, exited, sig, grace, fmt.Sprintf("kafka node %d", n.id), k.log)
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
