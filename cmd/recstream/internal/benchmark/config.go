package benchmark

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// Defaults of Config. The model shapes (10,000 items, 64 dimensions, runs of
// 256 and 1,024 users) are those the project's goals are stated for.
const (
	DefaultDataDir      = ".run/bench/data"
	DefaultEvents       = 300_000
	DefaultUsers        = 5000
	DefaultItems        = 10_000
	DefaultDim          = 64
	DefaultPartitions   = 8
	DefaultRepeats      = 3
	DefaultSeed         = 1
	DefaultLiveDuration = 8 * time.Second
	DefaultRunTime      = 300 * time.Millisecond
	DefaultGoLoopUsers  = 256
	DefaultStateUsers   = 100_000
	DefaultSinkBatches  = 20
)

// DefaultSessionBatches are the users per raw session run measured as the
// ONNX Runtime ceiling: the scorer's run size on CPU and a larger one.
var DefaultSessionBatches = []int{256, 1024}

// Config sizes a benchmark run. The zero value of each field means its
// default (see WithDefaults).
type Config struct {
	// DataDir holds the broker's log and the ClickHouse server's data; it
	// is wiped at the start of a run. Default ".run/bench/data".
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// ProfileDir, when set, receives a Go CPU profile of each stage and
	// the allocation profile at its end (see stageProfiler).
	ProfileDir string `yaml:"profile_dir" json:"profile_dir,omitempty"`
	// Events is the number of input records generated and produced once to
	// the input topic (about 0.5% of them malformed, as in the demo).
	// Default 300,000.
	Events int `yaml:"events" json:"events"`
	// Users and Items shape the synthetic clickstream; Items is also the
	// model's item count. Defaults 5,000 and 10,000.
	Users int `yaml:"users" json:"users"`
	Items int `yaml:"items" json:"items"`
	// Dim is the width of the model's user state and item embeddings.
	// Default 64.
	Dim int `yaml:"dim" json:"dim"`
	// Partitions of the input topic. Default 8.
	Partitions int `yaml:"partitions" json:"partitions"`
	// Repeats is how many times each figure is measured; the report gives
	// their median, minimum and maximum. Default 3.
	Repeats int `yaml:"repeats" json:"repeats"`
	// Seed fixes the synthetic clickstream and the model. Default 1.
	Seed uint64 `yaml:"seed" json:"seed"`
	// LiveDuration is how long events are produced live for each latency
	// measurement (at 50% and at 100% of the pipeline's maximum
	// throughput). Default 8s.
	LiveDuration time.Duration `yaml:"live_duration" json:"live_duration"`
	// SessionBatches are the users per raw ONNX Runtime run measured as
	// the scorer's ceiling; the first is the one the scorer's goal uses (the
	// scorer's run size on CPU). Default [256, 1024].
	SessionBatches []int `yaml:"session_batches" json:"session_batches"`
	// RunTime is how long each raw ONNX Runtime measurement keeps running
	// the session (at least 5 runs). Default 300ms.
	RunTime time.Duration `yaml:"run_time" json:"run_time"`
	// GoLoopUsers is the number of users the plain Go scoring loop scores
	// per repeat (it is about 30 times slower than ONNX Runtime). Default
	// 256.
	GoLoopUsers int `yaml:"go_loop_users" json:"go_loop_users"`
	// StateUsers is the number of users stored to measure the bytes of
	// scorer state per user. Default 100,000.
	StateUsers int `yaml:"state_users" json:"state_users"`
	// SinkBatches is how many of the consumer's batches (and their
	// recommendations) the sink stages write per turn: the first ones.
	// ClickHouse takes tens of seconds per hundred thousand rows on a
	// small machine, and each repeat writes them three times. Default 20
	// (100,000 events with the consumer's batches of 5,000).
	SinkBatches int `yaml:"sink_batches" json:"sink_batches"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.Events = cmp.Or(c.Events, DefaultEvents)
	c.Users = cmp.Or(c.Users, DefaultUsers)
	c.Items = cmp.Or(c.Items, DefaultItems)
	c.Dim = cmp.Or(c.Dim, DefaultDim)
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.Repeats = cmp.Or(c.Repeats, DefaultRepeats)
	c.Seed = cmp.Or(c.Seed, DefaultSeed)
	c.LiveDuration = cmp.Or(c.LiveDuration, DefaultLiveDuration)
	if len(c.SessionBatches) == 0 {
		c.SessionBatches = append([]int(nil), DefaultSessionBatches...)
	}
	c.RunTime = cmp.Or(c.RunTime, DefaultRunTime)
	c.GoLoopUsers = cmp.Or(c.GoLoopUsers, DefaultGoLoopUsers)
	c.StateUsers = cmp.Or(c.StateUsers, DefaultStateUsers)
	c.SinkBatches = cmp.Or(c.SinkBatches, DefaultSinkBatches)
	return c
}

// Validate reports the first out-of-range field, naming its yaml key. Zero
// fields are valid: they mean the default.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"events", c.Events}, {"users", c.Users}, {"items", c.Items}, {"dim", c.Dim},
		{"partitions", c.Partitions}, {"repeats", c.Repeats}, {"go_loop_users", c.GoLoopUsers},
		{"state_users", c.StateUsers}, {"sink_batches", c.SinkBatches},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s: must be > 0 (0 means the default), got %d", f.name, f.v)
		}
	}
	switch {
	case c.Events != 0 && c.Events < 100:
		return fmt.Errorf("events: must be at least 100, got %d", c.Events)
	case c.Items != 0 && c.Items < 20:
		// The model's top-K is 20: fewer items cannot fill a record.
		return fmt.Errorf("items: must be at least 20 (the model's top-K), got %d", c.Items)
	case c.Partitions > 1000:
		return fmt.Errorf("partitions: must be at most 1000, got %d", c.Partitions)
	case c.LiveDuration < 0:
		return fmt.Errorf("live_duration: must be > 0 (0 means %s), got %s", DefaultLiveDuration, c.LiveDuration)
	case c.RunTime < 0:
		return fmt.Errorf("run_time: must be > 0 (0 means %s), got %s", DefaultRunTime, c.RunTime)
	}
	for i, b := range c.SessionBatches {
		if b <= 0 {
			return fmt.Errorf("session_batches[%d]: must be > 0, got %d", i, b)
		}
	}
	if c.DataDir == "/" {
		return errors.New("data_dir: must not be the root directory (it is wiped at the start)")
	}
	return nil
}
