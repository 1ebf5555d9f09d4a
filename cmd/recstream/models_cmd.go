package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

// newModelsCommand is `recstream models`: the model registry a scorer with
// scorer.models_dir serves from.
func newModelsCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List the versions of a models directory, or activate one",
		Long: `A models directory (scorer.models_dir) holds one model directory per version
(DIR/<version>/, as 'recstream train --out DIR/<version>' writes it) and a
CURRENT file naming the version to serve. A running scorer reads CURRENT every
scorer.reload_interval and swaps a new version in between two batches once it
has loaded and passed every check; a version that fails is refused, logged,
and the old one keeps serving.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "the models directory (required)")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the versions, marking the current one with *",
		Example: `  recstream models list --dir /var/lib/recstream/models`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{fmt.Errorf("--dir is required")}
			}
			versions, err := models.NewModelRegistry(dir).List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\tVERSION\tMODEL_VERSION\tKIND\tITEMS\tDIM\tCREATED")
			for _, v := range versions {
				mark := " "
				if v.Current {
					mark = "*"
				}
				if v.Err != nil {
					fmt.Fprintf(w, "%s\t%s\t(unreadable: %v)\t\t\t\t\n", mark, v.Version, v.Err)
					continue
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", mark, v.Version, v.Meta.Version, v.Meta.Kind,
					v.Meta.NumItems, v.Meta.Dim, v.Meta.CreatedAt.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		},
	}

	var noCheck bool
	var libraryPath string
	activate := &cobra.Command{
		Use:   "activate VERSION",
		Short: "Make VERSION the one to serve (CURRENT is rewritten atomically)",
		Long: `activate loads VERSION with ONNX Runtime and checks it against the model
contract (schemas/MODEL.md), then rewrites DIR/CURRENT atomically. Running
scorers pick it up within scorer.reload_interval. --no-check skips the graph
check (the scorers still refuse a broken version).`,
		Example: `  recstream models activate v2 --dir /var/lib/recstream/models`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageError{fmt.Errorf("--dir is required")}
			}
			reg := models.NewModelRegistry(dir)
			vdir, err := reg.VersionDir(args[0])
			if err != nil {
				return usageError{err}
			}
			if !noCheck {
				rt, err := onnxruntime.OpenRuntime(libraryPath, nil)
				if err != nil {
					return fmt.Errorf("check %s: %w", vdir, err)
				}
				m, err := models.LoadModelDir(vdir)
				rt.Close()
				if err != nil {
					return fmt.Errorf("refuse to activate %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s model %s, %d items\n", filepath.Base(vdir), m.Contract, m.Meta.Version, len(m.Items))
			}
			prev, _ := reg.Current()
			if err := reg.Activate(args[0]); err != nil {
				return err
			}
			if prev == "" {
				prev = "none"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current version: %s (was %s)\n", args[0], prev)
			return nil
		},
	}
	activate.Flags().BoolVar(&noCheck, "no-check", false, "do not load the model to check it first")
	activate.Flags().StringVar(&libraryPath, "onnxruntime-lib", "", "ONNX Runtime library (default: $ONNXRUNTIME_LIB or .deps/onnxruntime)")
	cmd.AddCommand(list, activate)
	return cmd
}
