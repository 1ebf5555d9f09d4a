package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrillRefusesBadUsage checks that bad drill settings stop it with
// exit code 2 before anything is started.
func TestDrillRefusesBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown scenario", []string{"--scenarios", "kill9,meteor"}},
		{"too few events", []string{"--events", "10"}},
		{"negative kills", []string{"--kills", "-1", "--scenarios", "kill9"}},
		{"no such binary", []string{"--binary", "/nonexistent/recstream"}},
		{"bad duration", []string{"--outage", "soon"}},
		{"session below the brokers' minimum", []string{"--session-timeout", "200ms"}},
		{"backwards seed range", []string{"--seeds", "5-2"}},
		{"more contention than cores", []string{"--contention", "999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			// A binary that does not exist: should a case pass the checks
			// by mistake, nothing can start.
			args := append([]string{"drill", "--work-dir", work, "--binary", "/nonexistent/recstream"}, tt.args...)
			if got := execute(context.Background(), args); got != exitUsage {
				t.Fatalf("recstream %s: exit %d, want %d", strings.Join(args, " "), got, exitUsage)
			}
			if _, err := os.Stat(filepath.Join(work, "kafka")); err == nil {
				t.Errorf("the drill started a cluster although the settings are bad")
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	if got := splitList(" kill9, ,broker-loss,"); strings.Join(got, "|") != "kill9|broker-loss" {
		t.Fatalf("splitList = %q", got)
	}
}
