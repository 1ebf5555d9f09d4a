package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandDocumentsItself walks the command tree: every command
// needs a Short line and a Long text or examples, every command that runs
// something needs examples, and `--help` must print them and succeed.
func TestEveryCommandDocumentsItself(t *testing.T) {
	var walk func(c *cobra.Command, path []string)
	seen := 0
	walk = func(c *cobra.Command, path []string) {
		name := strings.Join(path, " ")
		seen++
		if strings.TrimSpace(c.Short) == "" {
			t.Errorf("%q has no Short description", name)
		}
		if strings.TrimSpace(c.Long) == "" && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has neither Long text nor Example", name)
		}
		if c.Runnable() && strings.TrimSpace(c.Example) == "" && len(path) > 1 {
			t.Errorf("%q runs something but shows no Example", name)
		}
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(append([]string{}, path[1:]...), "--help"))
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Errorf("%s --help: %v", name, err)
		}
		if !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%s --help printed no usage:\n%s", name, out.String())
		}
		if c.Example != "" && !strings.Contains(out.String(), "Examples:") {
			t.Errorf("%s --help does not show its examples", name)
		}
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" { // cobra's own
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRootCommand(), []string{"recstream"})
	if seen < 8 {
		t.Fatalf("walked only %d commands", seen)
	}
}

// TestExitCodes checks the documented exit codes of execute: 2 for bad
// usage, 0 for help.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, exitOK},
		{[]string{"run", "--no-such-flag"}, exitUsage},
		{[]string{"config", "check"}, exitUsage},
		{[]string{"config", "check", "a.yaml", "b.yaml"}, exitUsage},
		{[]string{"no-such-command"}, exitUsage},
		{[]string{"config", "check", "/nonexistent/recstream.yaml"}, exitUsage},
		{[]string{"generate", "--events", "0"}, exitUsage},
	}
	for _, tt := range tests {
		if got := execute(context.Background(), tt.args); got != tt.want {
			t.Errorf("recstream %s: exit %d, want %d", strings.Join(tt.args, " "), got, tt.want)
		}
	}
}
