// Package embedded runs the external engines recstream's tests and demo need
// as child processes on loopback, each with its own configuration and data
// directory, so that nothing depends on a system daemon or on fixed ports.
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.uber.org/zap"
)

const (
	// clickHouseStartTimeout bounds a start when the caller's context has no
	// deadline. 18.16 accepts connections about 0.2 s after exec; a slow CI
	// machine loading many parts may need far longer.
	clickHouseStartTimeout = 60 * time.Second
	// clickHouseStopTimeout is how long Stop waits after SIGTERM before it
	// sends SIGKILL.
	clickHouseStopTimeout = 20 * time.Second
	// portAttempts is how many free ports a first start tries: the port is
	// probed free, then closed, so another process can take it before the
	// server binds it.
	portAttempts = 3
)

// ClickHouseServer is a clickhouse-server child process listening on
// 127.0.0.1 with its configuration, data, temporary files and logs under one
// directory. Only the native protocol is served (no HTTP, no interserver port).
//
// The process runs in its own process group, so a terminal's Ctrl-C reaches
// only the parent, which decides the shutdown order; it also gets SIGKILL if
// the parent dies, so a crashed test leaves no server behind.
//
// Its methods are safe for concurrent use.
type ClickHouseServer struct {
	dir  string
	bin  string
	port int
	log  *zap.Logger

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed when cmd has exited
}

// StartClickHouse writes config.xml and users.xml into dir (created if
// missing), starts clickhouse-server on a free loopback port and returns once
// a native-protocol Ping succeeds, or ctx ends, or 60 s pass when ctx has no
// deadline. Existing data under dir is kept, so a server can be started again
// on the data of an earlier one.
//
// users.xml defines the user "default" (no password, loopback only) and the
// user "readonly" (no password, readonly profile), which tests use to check
// that a writer refuses to start without write access.
//
// A nil log means zap.NewNop().
func StartClickHouse(ctx context.Context, dir string, log *zap.Logger) (*ClickHouseServer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	bin, err := clickHouseBinary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dir %q: %w", dir, err)
	}
	// The path goes into XML unescaped.
	if strings.ContainsAny(dir, "<>&\"'") {
		return nil, fmt.Errorf("clickhouse dir %q: must not contain any of <>&\"'", dir)
	}
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("create clickhouse %s dir: %w", d, err)
		}
	}
	s := &ClickHouseServer{dir: dir, bin: bin, log: log}
	for attempt := 1; ; attempt++ {
		if s.port, err = freeLoopbackPort(); err != nil {
			return nil, err
		}
		if err = s.writeConfig(); err != nil {
			return nil, err
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt == portAttempts || !strings.Contains(err.Error(), "already in use") {
			return nil, err
		}
		log.Warn("clickhouse port taken before the server bound it; trying another",
			zap.Int("port", s.port), zap.Error(err))
	}
}

// Addr returns the native-protocol address, "127.0.0.1:port". The port stays
// the same across Restart.
func (s *ClickHouseServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir returns the server's directory (config, data/, log/).
func (s *ClickHouseServer) Dir() string { return s.dir }

// PID returns the process id of the running server, or 0 when it is stopped.
func (s *ClickHouseServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop sends SIGTERM to the server's process group and waits for it to exit;
// after 20 s it sends SIGKILL. Stopping a stopped server is a no-op.
func (s *ClickHouseServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGTERM, clickHouseStopTimeout)
}

// Kill sends SIGKILL to the server's process group and waits for it to exit,
// as a crash or an outage drill would leave it. Killing a stopped server is a
// no-op.
func (s *ClickHouseServer) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL, 0)
}

// Restart stops the server if it runs, then starts it again on the same
// directory and port, and returns once it answers a Ping (see
// StartClickHouse). Data written before the stop is kept.
func (s *ClickHouseServer) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

func (s *ClickHouseServer) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("start clickhouse on %s: already running as pid %d", s.Addr(), s.cmd.Process.Pid)
	}
	// The server reports start-up errors (port in use, bad config) in its
	// error log and on stderr; both are kept under log/.
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open clickhouse stdout log: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	outOffset, _ := out.Seek(0, io.SeekEnd)
	errOffset := fileSize(filepath.Join(s.dir, "log", "clickhouse-server.err.log"))
	cmd := exec.Command(s.bin, "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a signalled server says nothing useful
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	s.log.Info("clickhouse starting", zap.String("addr", s.Addr()), zap.Int("pid", cmd.Process.Pid),
		zap.String("dir", s.dir))

	if err := s.waitReady(ctx, exited); err != nil {
		// Leave nothing behind: a half-started server still holds the port
		// and the data directory's lock.
		_ = s.stopLocked(syscall.SIGKILL, 0)
		if tail := s.logTail(outOffset, errOffset); tail != "" {
			err = fmt.Errorf("%w; server log: %s", err, tail)
		}
		return fmt.Errorf("start clickhouse on %s: %w", s.Addr(), err)
	}
	s.log.Info("clickhouse ready", zap.String("addr", s.Addr()), zap.Int("pid", cmd.Process.Pid))
	return nil
}

// waitReady pings the server until it answers, it exits, or the start
// deadline passes.
func (s *ClickHouseServer) waitReady(ctx context.Context, exited <-chan struct{}) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, clickHouseStartTimeout)
		defer cancel()
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{s.Addr()},
		Protocol:    clickhouse.Native,
		DialTimeout: time.Second,
		ReadTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("open client: %w", err)
	}
	defer conn.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = conn.Ping(pingCtx)
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last ping: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// stopLocked signals the process group and waits for the process to exit,
// escalating to SIGKILL after grace. s.mu must be held.
func (s *ClickHouseServer) stopLocked(sig syscall.Signal, grace time.Duration) error {
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	exited := s.exited
	defer func() { s.cmd, s.exited = nil, nil }()
	select {
	case <-exited:
		// Already gone (crashed, or killed from outside) and reaped: its pid
		// may belong to another process by now, so send nothing.
		return nil
	default:
	}
	return stopProcessGroup(pid, exited, sig, grace, "clickhouse", s.log)
}

// logTail returns what the server said about its start-up failure: the
// <Error> lines its error log gained since errOffset and anything but the
// "Logging ... to" banner on stdout/stderr since outOffset.
func (s *ClickHouseServer) logTail(outOffset, errOffset int64) string {
	var msgs []string
	if b := readFrom(filepath.Join(s.dir, "log", "clickhouse-server.err.log"), errOffset); b != nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "<Error>") {
				msgs = append(msgs, line)
			}
		}
	}
	if b := readFrom(filepath.Join(s.dir, "log", "stdout.log"), outOffset); b != nil {
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "Logging ") {
				msgs = append(msgs, line)
			}
		}
	}
	if len(msgs) > 3 {
		msgs = msgs[len(msgs)-3:]
	}
	for i, m := range msgs {
		if len(m) > 600 {
			msgs[i] = m[:600] + "..."
		}
	}
	return strings.Join(msgs, " | ")
}

// readFrom returns the content of path after offset, or nil.
func readFrom(path string, offset int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	return b[offset:]
}

// fileSize returns the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// clickHouseBinary finds clickhouse-server on PATH or where Debian installs it
// (/usr/sbin is not on every user's PATH).
func clickHouseBinary() (string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("clickhouse-server not found: run make setup")
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *ClickHouseServer) writeConfig() error {
	data := struct {
		Dir  string
		Port int
	}{s.dir, s.port}
	for name, tmpl := range map[string]*template.Template{"config.xml": configXML, "users.xml": usersXML} {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return fmt.Errorf("render clickhouse %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write clickhouse %s: %w", name, err)
		}
	}
	return nil
}

// configXML is the server configuration. With no http_port, https_port or
// interserver_http_port element, 18.16 serves none of them: only the native
// TCP port, on loopback. Caches are sized for a test machine, not the
// package's production defaults (8 GiB uncompressed, 5 GiB marks).
var configXML = template.Must(template.New("config.xml").Parse(`<?xml version="1.0"?>
<!-- Written by recstream's internal/embedded; rewritten at every start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{{.Dir}}/log/clickhouse-server.log</log>
        <errorlog>{{.Dir}}/log/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{{.Port}}</tcp_port>
    <path>{{.Dir}}/data/</path>
    <tmp_path>{{.Dir}}/tmp/</tmp_path>
    <user_files_path>{{.Dir}}/user_files/</user_files_path>
    <format_schema_path>{{.Dir}}/format_schemas/</format_schema_path>
    <users_config>{{.Dir}}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>1024</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <mlock_executable>false</mlock_executable>
    <!-- On SIGTERM the server waits for open connections, idle ones too
         (default 5 s); 2 s lets an in-flight insert finish without making
         every stop slow. -->
    <shutdown_wait_unfinished>2</shutdown_wait_unfinished>
</yandex>
`))

// usersXML defines the users. Both are limited to loopback.
var usersXML = template.Must(template.New("users.xml").Parse(`<?xml version="1.0"?>
<!-- Written by recstream's internal/embedded; rewritten at every start. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <!-- An idle connection's handler checks for shutdown once per
                 poll_interval (default 10 s), so with a client connected a
                 stop would take 10 s. -->
            <poll_interval>1</poll_interval>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <readonly>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </readonly>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`))
