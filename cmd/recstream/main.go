// Command recstream is the streaming personalization pipeline: it consumes a
// clickstream from Kafka, refreshes each active user's recommendations with
// an ONNX model, and writes them to ClickHouse and a Kafka output topic.
//
// Exit codes: 0 success (also after a graceful stop by SIGTERM or SIGINT);
// 1 a runtime failure; 2 bad usage or bad configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks errors that are the caller's to fix (flags, configuration).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, os.Args[1:]))
}

func execute(ctx context.Context, args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "recstream:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "recstream",
		Short: "Streaming real-time recommendations: Kafka clickstream in, ONNX scoring, ClickHouse and Kafka out",
		Long: `recstream consumes clickstream events from Kafka, refreshes each active user's
recommendations incrementally with an ONNX model, and writes them to ClickHouse
and to a compacted Kafka topic. Every output can be rebuilt by replaying input.

Exit codes: 0 success (also after SIGTERM/SIGINT drained the in-flight batch),
1 runtime failure, 2 bad usage or configuration.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	var stopProfile func()
	root.PersistentFlags().StringVar(&cpuProfile, "cpu-profile", "", "write a Go CPU profile of the command to this file")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return usageError{fmt.Errorf("--cpu-profile: %w", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("start cpu profile: %w", err)
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if stopProfile != nil {
			stopProfile()
		}
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newRunCommand(),
		newReplayCommand(),
		newDrillCommand(),
		newDemoCommand(),
		newBenchCommand(),
		newGenerateCommand(),
		newTrainCommand(),
		newEvalCommand(),
		newConfigCommand(),
		newModelsCommand(),
	)
	markUsageErrors(root)
	return root
}
