package benchmark

import (
	"context"
	"fmt"
)

// contender is one of the things a stage measures in turns: a ceiling, the
// stage itself, or a reference.
type contender struct {
	// row is the row to report; its Value, Cores and OtherCores are filled
	// from the repeats.
	row Row
	// run measures once and returns the rate and the cores busy while it
	// ran.
	run func(ctx context.Context, rep int) (float64, coreUse, error)
}

// measureInTurns runs every contender once per repeat, starting each
// repeat one contender further along, so that a change in the machine's
// load (other builds on a shared machine) weighs on the ceilings and the
// stages alike instead of on whichever ran last. It adds one row per
// contender, in the order given, and returns the cores each kept busy.
func (r *run) measureInTurns(ctx context.Context, cs []contender) ([]coreSamples, error) {
	values := make([][]float64, len(cs))
	cores := make([]coreSamples, len(cs))
	for rep := range r.cfg.Repeats {
		for k := range cs {
			i := (k + rep) % len(cs)
			c := cs[i]
			v, use, err := c.run(ctx, rep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.row.Name, err)
			}
			values[i] = append(values[i], v)
			cores[i].add(use)
			r.progressRepeat(c.row.Name, rep, v, c.row.Unit)
		}
	}
	for i, c := range cs {
		row := c.row
		row.Value = NewFigure(values[i])
		r.report.addRow(cores[i].set(row))
	}
	return cores, nil
}
