package drills

import (
	"syscall"
	"testing"
	"time"
)

// TestContentionBurnsCPU: a busy loop burns CPU until stopped, and nothing
// after. It waits for the CPU to be used instead of timing a window, so a
// loaded machine only makes it slower.
func TestContentionBurnsCPU(t *testing.T) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	stop := startContention(1)
	deadline := time.Now().Add(30 * time.Second)
	for cpu()-before < 200*time.Millisecond {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("one busy loop used %s of CPU in 30 s", cpu()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	// Idle now: a second of wall time must cost far less than a second.
	before = cpu()
	time.Sleep(time.Second)
	if after := cpu() - before; after > 300*time.Millisecond {
		t.Fatalf("%s of CPU used in the second after stop: the busy loop did not stop", after)
	}
	startContention(0)() // none: nothing to stop
}
