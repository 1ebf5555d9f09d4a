package embedded

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// stopProcessGroup signals the process group of pid (started with Setpgid,
// so pid is the group's id) with sig and waits until exited is closed; a
// signal other than SIGKILL that has not stopped it within grace is
// followed by SIGKILL. what names the process in errors and logs ("kafka
// node 2", "clickhouse"); log gets one line for the stop or the kill.
// The caller has checked that the process was not reaped already, so pid
// is still its own.
func stopProcessGroup(pid int, exited <-chan struct{}, sig syscall.Signal, grace time.Duration, what string, log *zap.Logger) error {
	began := time.Now()
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s pid %d with %v: %w", what, pid, sig, err)
	}
	if sig != syscall.SIGKILL {
		select {
		case <-exited:
			log.Info(what+" stopped", zap.Int("pid", pid), zap.Duration("took", time.Since(began)))
			return nil
		case <-time.After(grace):
			log.Warn(what+" did not stop in time; killing it", zap.Int("pid", pid), zap.Duration("grace", grace))
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill %s pid %d: %w", what, pid, err)
			}
		}
	}
	<-exited
	log.Info(what+" killed", zap.Int("pid", pid))
	return nil
}
