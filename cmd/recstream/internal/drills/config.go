package drills

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario names, as --scenarios takes them.
const (
	ScenarioKill9             = "kill9"
	ScenarioBrokerLoss        = "broker-loss"
	ScenarioBrokerRestart     = "broker-restart"
	ScenarioClickHouseOutage  = "clickhouse-outage"
	ScenarioPoisonBurst       = "poison-burst"
	ScenarioCorruptCheckpoint = "corrupt-checkpoint"
	ScenarioModelRollback     = "model-rollback"
)

// AllScenarios returns every scenario in the order a drill runs them:
// those that leave the cluster whole first, broker-loss last (it leaves one
// broker of the three down for good).
func AllScenarios() []string {
	return []string{
		ScenarioPoisonBurst, ScenarioClickHouseOutage, ScenarioCorruptCheckpoint, ScenarioModelRollback,
		ScenarioKill9, ScenarioBrokerRestart, ScenarioBrokerLoss,
	}
}

// Defaults of Config.
const (
	DefaultEvents            = 20000
	DefaultKills             = 10
	DefaultOutage            = 5 * time.Second
	DefaultPartitions        = 4
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultCheckpointEvery   = 500 * time.Millisecond
	DefaultBatchRows         = 500
	DefaultPoisonRecords     = 200
)

// Config describes one drill: which scenarios run, on what input, and where
// the drill keeps its cluster, server, model and logs. Zero fields take the
// defaults noted; WorkDir and Binary are required.
type Config struct {
	// Scenarios names the scenarios to run (see AllScenarios); "all" or
	// empty means every one. They run in AllScenarios order whatever the
	// order given, so that broker-loss comes last.
	Scenarios []string `yaml:"scenarios" json:"scenarios"`
	// Seed fixes the input stream, the model's training and every random
	// choice of the drill (kill points). The same seed gives the same input.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Events is the number of input events of each scenario (and of the
	// reference run). Default 20000.
	Events int `yaml:"events" json:"events"`
	// Kills is how many times kill9 kills the pipeline. Default 10.
	Kills int `yaml:"kills" json:"kills"`
	// Outage is how long clickhouse-outage keeps ClickHouse down and
	// broker-restart keeps its broker stopped. Default 5s.
	Outage time.Duration `yaml:"outage" json:"outage"`
	// Partitions is the partition count of each input topic. Default 4.
	Partitions int `yaml:"partitions" json:"partitions"`
	// SessionTimeout and HeartbeatInterval are the pipeline's consumer
	// group settings: a pipeline restarted after kill -9 waits for the
	// killed member's session to expire before it gets partitions again, so
	// SessionTimeout bounds that part of every kill's recovery. Defaults 6s
	// and 500ms.
	SessionTimeout    time.Duration `yaml:"session_timeout" json:"session_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" json:"heartbeat_interval"`
	// CheckpointInterval is the pipeline's checkpoint.interval. Default 500ms,
	// so that every kill finds several generations.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval" json:"checkpoint_interval"`
	// BatchRows is the pipeline's input.batch.max_rows. Default 500.
	BatchRows int `yaml:"batch_rows" json:"batch_rows"`
	// PoisonRecords is the size of poison-burst's burst. Default 200.
	PoisonRecords int `yaml:"poison_records" json:"poison_records"`
	// Contention is how many cores the drill keeps busy beside the
	// pipeline for its whole length (the reference run too), so that the
	// guarantees are checked on a loaded machine. 0, the default, means
	// none.
	Contention int `yaml:"contention" json:"contention"`
	// WorkDir holds the drill's Kafka cluster, ClickHouse server, models,
	// pipeline configurations and logs. Required. The drill removes and
	// recreates its own subdirectories of it (kafka, clickhouse, models,
	// scenarios) at start.
	WorkDir string `yaml:"work_dir" json:"work_dir"`
	// Binary is the recstream executable run as the pipeline
	// ("BINARY run --config FILE"). Required.
	Binary string `yaml:"binary" json:"binary"`
	// KafkaLibsDir is the directory of Apache Kafka's jars; empty means
	// where embedded.ApacheKafkaLibs finds them (make setup puts them in
	// .deps/kafka/libs).
	KafkaLibsDir string `yaml:"kafka_libs_dir" json:"kafka_libs_dir,omitempty"`
}

// WithDefaults returns c with every zero field set to its default and
// "all" expanded.
func (c Config) WithDefaults() Config {
	if len(c.Scenarios) == 0 || slices.Contains(c.Scenarios, "all") {
		c.Scenarios = AllScenarios()
	}
	c.Events = cmp.Or(c.Events, DefaultEvents)
	c.Kills = cmp.Or(c.Kills, DefaultKills)
	c.Outage = cmp.Or(c.Outage, DefaultOutage)
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.CheckpointInterval = cmp.Or(c.CheckpointInterval, DefaultCheckpointEvery)
	c.BatchRows = cmp.Or(c.BatchRows, DefaultBatchRows)
	c.PoisonRecords = cmp.Or(c.PoisonRecords, DefaultPoisonRecords)
	return c
}

// Validate reports the first invalid field of c (after WithDefaults),
// naming its yaml key.
func (c Config) Validate() error {
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios(), s) {
			return fmt.Errorf("scenarios: unknown scenario %q (want all or some of %s)", s, strings.Join(AllScenarios(), ", "))
		}
	}
	switch {
	case c.Events < 1000:
		return fmt.Errorf("events: must be >= 1000, got %d", c.Events)
	case c.Kills < 1:
		return fmt.Errorf("kills: must be >= 1, got %d", c.Kills)
	case c.Outage < 100*time.Millisecond:
		return fmt.Errorf("outage: must be >= 100ms, got %s", c.Outage)
	case c.Partitions < 1 || c.Partitions > 64:
		return fmt.Errorf("partitions: must be between 1 and 64, got %d", c.Partitions)
	case c.SessionTimeout < time.Second:
		return fmt.Errorf("session_timeout: must be >= 1s (the drill's brokers allow no less), got %s", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("heartbeat_interval: must be > 0 and below session_timeout (%s), got %s", c.SessionTimeout, c.HeartbeatInterval)
	case c.Contention < 0 || c.Contention > runtime.NumCPU():
		return fmt.Errorf("contention: must be 0 to %d (the cores here), got %d", runtime.NumCPU(), c.Contention)
	case c.CheckpointInterval <= 0:
		return fmt.Errorf("checkpoint_interval: must be > 0, got %s", c.CheckpointInterval)
	case c.BatchRows < 1:
		return fmt.Errorf("batch_rows: must be >= 1, got %d", c.BatchRows)
	case c.PoisonRecords < len(poisonKinds):
		return fmt.Errorf("poison_records: must be >= %d (one of each kind), got %d", len(poisonKinds), c.PoisonRecords)
	case c.WorkDir == "":
		return errors.New("work_dir: must be set")
	case c.Binary == "":
		return errors.New("binary: must be set (the recstream executable)")
	}
	return nil
}

// ordered returns c.Scenarios in AllScenarios order, without repeats.
func (c Config) ordered() []string {
	var out []string
	for _, s := range AllScenarios() {
		if slices.Contains(c.Scenarios, s) {
			out = append(out, s)
		}
	}
	return out
}
