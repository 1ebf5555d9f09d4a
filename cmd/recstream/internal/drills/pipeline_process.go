package drills

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// pipelineProcess is one run of the pipeline as a child process
// ("recstream run --config FILE"), its log appended to a file shared by
// every run of a scenario.
type pipelineProcess struct {
	cmd       *exec.Cmd
	started   time.Time
	logPath   string
	logOffset int64 // where this run's log starts in logPath
	exited    chan struct{}
	waitErr   error // set before exited is closed
}

// startPipeline starts bin with "run --config cfgPath", stdout and stderr
// appended to logPath. The child gets SIGKILL if the drill dies, and runs in
// its own process group, so that a terminal's Ctrl-C reaches only the
// drill, which stops it in order.
func startPipeline(bin, cfgPath, logPath string) (*pipelineProcess, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open pipeline log: %w", err)
	}
	defer f.Close() // the child holds its own descriptor
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("open pipeline log: %w", err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pipeline %s: %w", bin, err)
	}
	p := &pipelineProcess{cmd: cmd, started: time.Now(), logPath: logPath, logOffset: offset, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID is the child's process id.
func (p *pipelineProcess) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the child has exited.
func (p *pipelineProcess) Exited() <-chan struct{} { return p.exited }

// ExitCode is the child's exit code once it has exited: -1 when a signal
// killed it.
func (p *pipelineProcess) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

func (p *pipelineProcess) signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("pipeline pid %d has already exited (%s)", p.PID(), p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal pipeline pid %d with %v: %w", p.PID(), sig, err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the child to exit: kill -9.
func (p *pipelineProcess) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// Pause freezes the child (SIGSTOP); Kill still works on a paused child.
func (p *pipelineProcess) Pause() error { return p.signal(syscall.SIGSTOP) }

// Stop asks the child to stop gracefully (SIGTERM: drain the in-flight
// batch, commit it, exit 0) and waits up to grace, then kills it. It
// returns the exit code, or an error when the child had to be killed.
func (p *pipelineProcess) Stop(grace time.Duration) (int, error) {
	select {
	case <-p.exited:
		return p.ExitCode(), nil
	default:
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-p.exited:
		return p.ExitCode(), nil
	case <-time.After(grace):
		_ = p.Kill()
		return -1, fmt.Errorf("pipeline pid %d did not stop within %s of SIGTERM; killed", p.PID(), grace)
	}
}

// logLine is the part of a pipeline JSON log line the drill reads.
type logLine struct {
	// Ts is the time the line was logged (zap's ISO 8601 form).
	Ts         string `json:"ts"`
	Level      string `json:"level"`
	Msg        string `json:"msg"`
	Generation uint64 `json:"generation"`
	Version    string `json:"version"`
	To         string `json:"to"`
	Error      string `json:"error"`
}

// zapTimeLayout is how the pipeline's JSON log writes times.
const zapTimeLayout = "2006-01-02T15:04:05.000Z0700"

// At is when the line was logged; fallback when its time does not parse.
func (l logLine) At(fallback time.Time) time.Time {
	if t, err := time.Parse(zapTimeLayout, l.Ts); err == nil {
		return t
	}
	return fallback
}

// Log returns this run's log lines that parse as JSON.
func (p *pipelineProcess) Log() ([]logLine, error) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("read pipeline log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(p.logOffset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read pipeline log: %w", err)
	}
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		var l logLine
		if json.Unmarshal(b, &l) == nil {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// WaitLog waits until this run logs a line with message msg (and, when
// match is not nil, for which match is true), the child exits, or ctx ends.
func (p *pipelineProcess) WaitLog(ctx context.Context, msg string, match func(logLine) bool) (logLine, error) {
	for {
		lines, err := p.Log()
		if err != nil {
			return logLine{}, err
		}
		for _, l := range lines {
			if l.Msg == msg && (match == nil || match(l)) {
				return l, nil
			}
		}
		select {
		case <-ctx.Done():
			return logLine{}, fmt.Errorf("wait for the pipeline to log %q: %w", msg, ctx.Err())
		case <-p.exited:
			return logLine{}, fmt.Errorf("pipeline exited (%s) before logging %q; log tail: %s", p.cmd.ProcessState, msg, p.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last lines of this run's log, for error messages.
func (p *pipelineProcess) tail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.logOffset {
		return ""
	}
	b = bytes.TrimSpace(b[p.logOffset:])
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}

// errExitedEarly marks a pipeline that exited while the drill needed it.
var errExitedEarly = errors.New("pipeline exited unexpectedly")

// runToCompletion runs bin with args to its end, output appended to
// logPath, and fails when it exits with a non-zero code.
func runToCompletion(ctx context.Context, bin, logPath string, args ...string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	offset, _ := f.Seek(0, io.SeekEnd)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		p := &pipelineProcess{logPath: logPath, logOffset: offset}
		return fmt.Errorf("%s %s: %w; log tail: %s", filepath.Base(bin), args[0], err, p.tail())
	}
	return nil
}
