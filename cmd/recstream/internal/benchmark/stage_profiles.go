package benchmark

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
)

// stageProfiler writes, for each stage of a run, a Go CPU profile of the
// bench process while the stage runs (cpu-NN-<stage>.pprof) and the
// allocation profile at its end (allocs-NN-<stage>.pprof). Allocation
// profiles count from the start of the process: subtract the previous
// stage's with `go tool pprof -base`. The in-process broker runs in the
// same process and shows in the profiles; the ClickHouse server does not.
type stageProfiler struct{ dir string }

// start begins stage n's CPU profile and returns the function that ends
// it and writes the allocation profile. Without a directory both do
// nothing.
func (p stageProfiler) start(n int, stage string) (stop func() error, err error) {
	if p.dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	name := fmt.Sprintf("%02d-%s.pprof", n, slug(stage))
	cpu, err := os.Create(filepath.Join(p.dir, "cpu-"+name))
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("start CPU profile of %s: %w", stage, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := cpu.Close(); err != nil {
			return fmt.Errorf("write CPU profile of %s: %w", stage, err)
		}
		runtime.GC() // the allocation profile is as of the last GC
		f, err := os.Create(filepath.Join(p.dir, "allocs-"+name))
		if err != nil {
			return fmt.Errorf("create allocation profile: %w", err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return fmt.Errorf("write allocation profile of %s: %w", stage, err)
		}
		return f.Close()
	}, nil
}

// slug turns a stage's name into a file name part: "score: raw ONNX
// Runtime, …" becomes "score".
func slug(stage string) string {
	name, _, _ := strings.Cut(stage, ":")
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
