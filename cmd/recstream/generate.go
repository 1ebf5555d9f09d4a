package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
)

func newGenerateCommand() *cobra.Command {
	var (
		events  int
		out     string
		brokers string
		topic   string
		rate    float64
		gcfg    generator.Config
		quiet   bool
		cfgPath string
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write a synthetic clickstream to a Kafka topic or a JSON-lines file",
		Long: `generate writes synthetic clickstream events in the event contract
(schemas/EVENTS.md): items of categories with Zipf popularity, sessions that
walk a view → click → add_to_cart → purchase funnel, searches, users whose
interests drift, and a small share of malformed events (--malformed-rate).
The same --seed gives the same stream.

With --config, the brokers and the connection's security (kafka.tls,
kafka.sasl, with their RECSTREAM_KAFKA_* environment overrides and
password files) come from a recstream configuration file; --brokers, when
given too, replaces the file's brokers.`,
		Example: `  recstream generate --events 100000 --seed 7 --brokers 127.0.0.1:9092
  recstream generate --events 50000 --seed 1 --out history.jsonl --malformed-rate -1
  RECSTREAM_KAFKA_SASL_PASSWORD=... recstream generate --events 10000 --config configs/production.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events <= 0 {
				return usageError{fmt.Errorf("--events: must be > 0, got %d", events)}
			}
			g := generator.New(gcfg)
			var bar *progress
			if !quiet {
				bar = newProgress("generate", events)
			}
			if out != "" {
				return writeEventFile(out, g, events, bar)
			}
			pc := generator.ProduceConfig{Topic: topic, Rate: rate}
			if cfgPath != "" {
				kc, err := config.LoadKafka(cfgPath, os.Environ())
				if err != nil {
					return usageError{err}
				}
				if pc.Auth, err = kafkaauth.New(kc.Auth()); err != nil {
					return usageError{fmt.Errorf("kafka.%w", err)}
				}
				pc.Brokers = kc.Brokers
			}
			if brokers != "" {
				pc.Brokers = strings.Split(brokers, ",")
			}
			if len(pc.Brokers) == 0 {
				return usageError{fmt.Errorf("--brokers, --config or --out is required")}
			}
			if err := pc.Auth.Check(cmd.Context(), pc.Brokers); errors.Is(err, kafkaauth.ErrRejected) {
				return err
			}
			pc.Progress = func(done int) {
				if bar != nil {
					bar.Set(done, 0)
				}
			}
			kinds, err := generator.Produce(cmd.Context(), pc, g, events)
			if bar != nil {
				bar.Done()
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "produced %d events to %s (%d valid, %d malformed)\n",
				events, topic, kinds[generator.KindValid], events-kinds[generator.KindValid])
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&events, "events", 100000, "number of events")
	f.StringVar(&out, "out", "", "write JSON lines to this file instead of Kafka")
	f.StringVar(&brokers, "brokers", "", "Kafka brokers, comma-separated")
	f.StringVarP(&cfgPath, "config", "c", "", "take the brokers and their TLS/SASL settings from this configuration file")
	f.StringVar(&topic, "topic", "clickstream.events", "Kafka topic")
	f.Float64Var(&rate, "rate", 0, "events per second (0: as fast as possible)")
	f.Uint64Var(&gcfg.Seed, "seed", 1, "random seed; the same seed gives the same stream")
	f.IntVar(&gcfg.Users, "users", 5000, "distinct users")
	f.IntVar(&gcfg.Items, "items", 10000, "distinct items")
	f.IntVar(&gcfg.Categories, "categories", 20, "item categories")
	f.Float64Var(&gcfg.MalformedRate, "malformed-rate", 0.005, "share of malformed events (negative: none)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func writeEventFile(path string, g *generator.Generator, n int, bar *progress) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		r := g.Next()
		w.Write(r.Value)
		w.WriteByte('\n')
		if bar != nil && i%1000 == 999 {
			bar.Set(i+1, 0)
		}
	}
	if bar != nil {
		bar.Done()
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
