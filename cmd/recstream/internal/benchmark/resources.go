package benchmark

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/state"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// usage measures the CPU time this process, the ClickHouse server and the
// whole machine spend over a span of wall time.
type usage struct {
	chPID             int
	wall              time.Time
	self, ch, machine time.Duration
}

// startUsage starts measuring.
func (r *run) startUsage() *usage {
	pid := r.clickHousePID()
	return &usage{chPID: pid, wall: time.Now(), self: processCPU(), ch: pidCPU(pid), machine: machineBusy()}
}

// cores is the CPU time this process and the ClickHouse server spent since
// the start over the wall time: how many cores were kept busy on average.
func (u *usage) cores() float64 {
	c := u.read()
	return c.self + c.clickhouse
}

// coreUse is the average number of cores busy over a span.
type coreUse struct {
	// self is this process, clickhouse the ClickHouse server, others every
	// other process of the machine (other builds and tests on a shared
	// machine: the noise of the figures).
	self, clickhouse, others float64
}

// read returns the cores busy since the start.
func (u *usage) read() coreUse {
	wall := time.Since(u.wall).Seconds()
	if wall <= 0 {
		return coreUse{}
	}
	c := coreUse{
		self:       (processCPU() - u.self).Seconds() / wall,
		clickhouse: (pidCPU(u.chPID) - u.ch).Seconds() / wall,
	}
	if m := machineBusy(); m > 0 {
		c.others = max(0, (m-u.machine).Seconds()/wall-c.self-c.clickhouse)
	}
	return c
}

// machineBusy is the CPU time every process of the machine has used
// (/proc/stat: all but idle and iowait); 0 when unknown.
func machineBusy() time.Duration {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range fields[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// cpuSpan measures the cores busy between begin and end, which a measured
// function calls where its clock starts and stops (set-up and tear-down
// left out). Safe for concurrent use.
type cpuSpan struct {
	r   *run
	mu  sync.Mutex
	u   *usage
	use coreUse
	end bool
}

func (r *run) newSpan() *cpuSpan { return &cpuSpan{r: r, u: r.startUsage()} }

// begin restarts the span.
func (s *cpuSpan) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.u, s.end = s.r.startUsage(), false
}

// stop ends the span; later calls do nothing.
func (s *cpuSpan) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.end {
		s.use, s.end = s.u.read(), true
	}
}

// result is what the span measured (up to now when stop was not called).
func (s *cpuSpan) result() coreUse {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.use
}

// processCPU is the CPU time this process has used, every thread.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pidCPU is the CPU time process pid has used (0 when unknown).
func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// statusBytes reads a "kB" field of /proc/<pid>/status ("self" for this
// process), in bytes; 0 when unknown.
func statusBytes(pid, field string) float64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// resetPeakRSS frees what the Go runtime holds and resets the process's
// peak resident memory (VmHWM), so that the next reading is the peak of
// what runs after it. Writing 5 to clear_refs is Linux's way to reset it;
// where that fails the reading stays the peak since the process started.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's peak resident memory since the last reset.
func peakRSS() float64 { return statusBytes("self", "VmHWM") }

// stateBytesPerUser stores users users in a state store of the scorer's
// layout (dim values, the default exclude list) and returns the heap it
// took per user. Ids are those of the generator ("u000123").
func stateBytesPerUser(dim, users int) (float64, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	store, err := state.NewVectorStore(dim, scorers.DefaultMaxExclude, users)
	if err != nil {
		return 0, fmt.Errorf("state store: %w", err)
	}
	vec := make([]float32, dim)
	bought := []int32{1, 2, 3}
	for i := range users {
		vec[0] = float32(i)
		err := store.Put(state.UserState{UserID: fmt.Sprintf("u%06d", i), State: vec,
			NewestTsMs: int64(i), Partition: 0, Offset: int64(i), Bought: bought})
		if err != nil {
			return 0, fmt.Errorf("store user %d: %w", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(store)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(users), nil
}

// coreSamples collects the cores busy over the repeats of a measurement.
type coreSamples struct{ busy, self, clickhouse, others []float64 }

func (c *coreSamples) add(u coreUse) {
	c.busy = append(c.busy, u.self+u.clickhouse)
	c.self = append(c.self, u.self)
	c.clickhouse = append(c.clickhouse, u.clickhouse)
	c.others = append(c.others, u.others)
}

// set fills row's Cores, ClickHouseCores and OtherCores.
func (c *coreSamples) set(row Row) Row {
	row.Cores, row.ClickHouseCores, row.OtherCores = NewFigure(c.busy), NewFigure(c.clickhouse), NewFigure(c.others)
	return row
}

// ioStall is the time some task of the machine waited for I/O, summed
// since boot (/proc/pressure/io, "some" line); ok is false where the
// kernel does not report it.
func ioStall() (d time.Duration, ok bool) {
	raw, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, found := strings.CutPrefix(f, "total="); found {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err == nil
			}
		}
	}
	return 0, false
}
