package drills

import (
	"runtime"
	"sync"
)

// startContention keeps n cores busy beside the pipeline until stop is
// called: each busy loop runs on its own OS thread, so the pipeline, its
// checkpoint writer and the brokers compete for what is left, as on a
// loaded machine. Timing bugs that a quiet machine hides (a checkpoint
// written late, a batch committed after a kill) show up under it.
func startContention(n int) (stop func()) {
	if n <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			x := uint64(1)
			for {
				select {
				case <-done:
					return
				default:
				}
				for range 1 << 16 {
					x = x*6364136223846793005 + 1442695040888963407
				}
				if x == 0 { // never true; keeps the loop from being optimised away
					runtime.Gosched()
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}
