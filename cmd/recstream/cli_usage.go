package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// markUsageErrors makes argument errors of every command in the tree (a
// missing FILE, an extra argument, an unknown subcommand) usage errors, so
// that they exit 2 like flag errors, as the README documents.
func markUsageErrors(root *cobra.Command) {
	// The root runs (it prints help) so that cobra checks its arguments
	// with Args below instead of failing in its own lookup.
	if root.Run == nil && root.RunE == nil {
		root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if root.SuggestionsMinimumDistance <= 0 {
		root.SuggestionsMinimumDistance = 2
	}
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageError{fmt.Errorf("%s", msg)}
		}
		return nil
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if check := sub.Args; check != nil {
				sub.Args = func(cmd *cobra.Command, args []string) error {
					if err := check(cmd, args); err != nil {
						return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
					}
					return nil
				}
			}
			walk(sub)
		}
	}
	walk(root)
}
