package drills

import (
	"syscall"
	"testing"
	"time"
)

// TestContentionBurnsCPU: n busy loops use about n cores of CPU time, and
// stop when told.
func TestContentionBurnsCPU(t *testing.T) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, began := cpu(), time.Now()
	stop := startContention(1)
	time.Sleep(500 * time.Millisecond)
	stop()
	used, wall := cpu()-before, time.Since(began)
	if used < wall/3 {
		t.Fatalf("one busy loop used %s of CPU in %s", used, wall)
	}
	before = cpu()
	time.Sleep(200 * time.Millisecond)
	if after := cpu() - before; after > 100*time.Millisecond {
		t.Fatalf("%s of CPU used after stop: the busy loop did not stop", after)
	}
	startContention(0)() // none: nothing to stop
}
