package drills

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := Config{WorkDir: "w", Binary: "b"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"unknown scenario", func(c *Config) { c.Scenarios = []string{"kill9", "meteor"} }, `scenarios: unknown scenario "meteor"`},
		{"too few events", func(c *Config) { c.Events = 10 }, "events: must be >= 1000, got 10"},
		{"no kills", func(c *Config) { c.Kills = -1 }, "kills: must be >= 1, got -1"},
		{"short outage", func(c *Config) { c.Outage = time.Millisecond }, "outage: must be >= 100ms"},
		{"partitions", func(c *Config) { c.Partitions = 100 }, "partitions: must be between 1 and 64, got 100"},
		{"short session", func(c *Config) { c.SessionTimeout = 500 * time.Millisecond }, "session_timeout: must be >= 1s"},
		{"heartbeat above session", func(c *Config) { c.HeartbeatInterval = 7 * time.Second }, "heartbeat_interval: must be > 0 and below session_timeout"},
		{"small burst", func(c *Config) { c.PoisonRecords = 3 }, "poison_records: must be >="},
		{"no work dir", func(c *Config) { c.WorkDir = "" }, "work_dir: must be set"},
		{"no binary", func(c *Config) { c.Binary = "" }, "binary: must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.change(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigScenarioOrder(t *testing.T) {
	c := Config{Scenarios: []string{ScenarioBrokerLoss, ScenarioKill9, ScenarioKill9, ScenarioPoisonBurst}}.WithDefaults()
	want := []string{ScenarioPoisonBurst, ScenarioKill9, ScenarioBrokerLoss}
	if got := c.ordered(); !slices.Equal(got, want) {
		t.Fatalf("ordered() = %v, want %v (broker-loss last, no repeats)", got, want)
	}
	if all := (Config{Scenarios: []string{"all"}}).WithDefaults(); !slices.Equal(all.Scenarios, AllScenarios()) {
		t.Fatalf("all = %v", all.Scenarios)
	}
	if last := AllScenarios()[len(AllScenarios())-1]; last != ScenarioBrokerLoss {
		t.Fatalf("the last scenario is %s: broker-loss leaves the cluster short and must run last", last)
	}
	for _, name := range AllScenarios() {
		if sc := newScenario(name); sc == nil || sc.name() != name {
			t.Errorf("newScenario(%q) = %v", name, sc)
		}
	}
}
