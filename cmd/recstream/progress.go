package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a long operation is: a live bar on a terminal, and
// a plain line every tenth of the way otherwise (CI logs, files), so that a
// log is readable and still shows the operation moving.
type progress struct {
	bar      *progressbar.ProgressBar
	w        io.Writer
	desc     string
	max      int
	lastTick int
}

func newProgress(desc string, max int) *progress {
	p := &progress{w: os.Stderr, desc: desc, max: max}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(max, progressbar.OptionSetDescription(desc),
			progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionThrottle(150*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

// Set reports done units of max; max may change (for example an unknown
// total that becomes known).
func (p *progress) Set(done, max int) {
	if max > 0 && max != p.max {
		p.max = max
		if p.bar != nil {
			p.bar.ChangeMax(max)
		}
	}
	if p.bar != nil {
		_ = p.bar.Set(done)
		return
	}
	if p.max <= 0 {
		return
	}
	if tick := done * 10 / p.max; tick > p.lastTick {
		p.lastTick = tick
		fmt.Fprintf(p.w, "  %s %3d%% (%d/%d)\n", p.desc, tick*10, done, p.max)
	}
}

// Done ends the display.
func (p *progress) Done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
