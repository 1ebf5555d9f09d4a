package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/evaluation"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/retrieval"
)

// evalOptions are the evaluation knobs `eval` and `train` share.
type evalOptions struct {
	k            int
	repeats      bool
	excludeSeen  bool
	recentWindow int
	halfLife     time.Duration
	jsonPath     string
	plotPath     string
	plotTimePath string
	// retrievalPath is a YAML file of retrieval.Config fields (the keys of
	// the scorer.retrieval block).
	retrievalPath string
}

// retrievalConfig reads --retrieval, or returns the defaults without it.
func (o evalOptions) retrievalConfig() (retrieval.Config, error) {
	var cfg retrieval.Config
	if o.retrievalPath == "" {
		return cfg, nil
	}
	raw, err := os.ReadFile(o.retrievalPath)
	if err != nil {
		return cfg, fmt.Errorf("--retrieval: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("--retrieval %s: %w", o.retrievalPath, err)
	}
	if err := cfg.WithDefaults().Validate(); err != nil {
		return cfg, fmt.Errorf("--retrieval %s: %w", o.retrievalPath, err)
	}
	return cfg, nil
}

func (o *evalOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&o.k, "k", 10, "length of the recommendation lists scored")
	f.BoolVar(&o.repeats, "repeats", false, "also score events on the user's previous item (a click after its view)")
	f.BoolVar(&o.excludeSeen, "exclude-seen", false, "score only items new to the user and drop the user's seen items from every list (MovieLens: each movie is rated once)")
	f.IntVar(&o.recentWindow, "recent-window", evaluation.DefaultRecentWindow, "recent-popularity baseline: window in events")
	f.DurationVar(&o.halfLife, "decay-half-life", scorers.DefaultDecayHalfLife, "scorer: half-life of a user's past interest")
	f.StringVar(&o.jsonPath, "json", "", "write the evaluation report as JSON to this file")
	f.StringVar(&o.plotPath, "plot", "", "draw the metrics per recommender as a bar chart into this file (.png, .svg, .pdf)")
	f.StringVar(&o.plotTimePath, "plot-time", "", "draw HR@k over time per recommender into this file")
	f.StringVar(&o.retrievalPath, "retrieval", "", "YAML file with the keys of a scorer.retrieval block: evaluate that configuration of the retrieval recommender instead of the defaults")
}

// modelTopK is the K models are written with: one more than the lists
// scored, because the harness drops the user's previous item.
func (o evalOptions) modelTopK() int { return max(models.DefaultTopK, o.k+1) }

// writeOutputs writes the report's JSON and plots where asked.
func (o evalOptions) writeOutputs(rep *evaluation.Report, w io.Writer) error {
	for _, out := range []struct {
		path  string
		write func(string, *evaluation.Report) error
	}{{o.jsonPath, evaluation.WriteJSON}, {o.plotPath, evaluation.WriteBarChart}, {o.plotTimePath, evaluation.WriteTimeChart}} {
		if out.path == "" {
			continue
		}
		if err := out.write(out.path, rep); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s\n", out.path)
	}
	return nil
}

func newEvalCommand() *cobra.Command {
	var (
		src           sourceFlags
		tf            trainFlags
		o             evalOptions
		trainFraction float64
		modelDir      string
		logLevel      string
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure recommendation quality on an event file: the model against baselines",
		Long: `eval replays an event history in time order and scores recommenders
prequentially: for each event of the evaluated part, before the event is
applied, every recommender gives the user's top --k items and the event's
item is looked up in them (HR, NDCG and MRR at k); then the event is applied
to all of them.

The model is trained with --method (a comma list or "all" compares several)
on the first --train-fraction of the events in time, or loaded from --model,
and is queried through the real scorer (Arrow event batches, the ONNX user
tower): a user's list is the record the pipeline would have published after
their previous event. Baselines computed alongside: global popularity,
recent popularity (the last --recent-window events), and item co-occurrence
(items seen with the user's last items, filled with popular ones).

Not scored (but applied): events without an item, a user's first event, and
an event on the same item as the user's previous one (that item is also
dropped from every list), unless --repeats.`,
		Example: `  recstream generate --events 200000 --out history.jsonl --malformed-rate -1
  recstream eval --input history.jsonl --method all --plot metrics.png
  recstream eval --input ml-100k/u.data --decay-half-life 720h --json ml.json
  recstream eval --input events.csv --format retailrocket --plot-time hr.png
  recstream eval --input log.csv --format csv --map user=uid,item=sku,ts=time,type=action --ts-unit s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !(trainFraction > 0 && trainFraction < 1) {
				return usageError{fmt.Errorf("--train-fraction: must be in (0, 1), got %g", trainFraction)}
			}
			if o.k <= 0 {
				return usageError{fmt.Errorf("--k: must be > 0, got %d", o.k)}
			}
			methods, err := tf.methods()
			if err != nil {
				return err
			}
			log, err := cliLogger(logLevel)
			if err != nil {
				return usageError{err}
			}
			defer log.Sync() //nolint:errcheck // stderr
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			ds, err := src.load(ctx, log)
			if err != nil {
				return err
			}
			src.describe(w, ds)
			split := ds.SplitIndex(trainFraction)
			if split == 0 || split == len(ds.Events) {
				return fmt.Errorf("evaluate: %d events cannot be split at %g", len(ds.Events), trainFraction)
			}
			var underTest []modelUnderTest
			if modelDir != "" {
				meta, err := models.ReadModelMetadata(modelDir)
				if err != nil {
					return err
				}
				if evalFrom, _ := ds.Span(split, len(ds.Events)); meta.DataToMs >= evalFrom {
					fmt.Fprintf(w, "warning: model %s learned from events up to %s, after the scored part starts (%s): its metrics are inflated\n",
						meta.Version, formatMs(meta.DataToMs), formatMs(evalFrom))
				}
				underTest = []modelUnderTest{{"model:" + meta.Version, modelDir}}
			} else {
				tmp, err := os.MkdirTemp("", "recstream-eval-")
				if err != nil {
					return fmt.Errorf("temporary model directory: %w", err)
				}
				defer os.RemoveAll(tmp)
				history := ds.Interactions(0, split)
				fmt.Fprintf(w, "training on the first %d events (%s)\n", split, formatSpan(ds, 0, split))
				for _, m := range methods {
					tcfg, err := tf.config(m)
					if err != nil {
						return usageError{err}
					}
					dir := filepath.Join(tmp, m)
					if _, err := trainToDir(ctx, history, tcfg, o.modelTopK(), dir, nil, w); err != nil {
						return err
					}
					underTest = append(underTest, modelUnderTest{"model:" + m, dir})
				}
			}
			rep, err := runEvaluation(ctx, ds, split, underTest, o, log)
			if err != nil {
				return err
			}
			if err := evaluation.WriteTable(w, rep); err != nil {
				return err
			}
			return o.writeOutputs(rep, w)
		},
	}
	src.register(cmd)
	tf.register(cmd, `training method(s): als, bpr, item2vec, a comma list, or "all"`)
	o.register(cmd)
	f := cmd.Flags()
	f.Float64Var(&trainFraction, "train-fraction", 0.5, "share of the events, first in time, the model is trained on; the rest is scored")
	f.StringVar(&modelDir, "model", "", "evaluate this model directory instead of training one")
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

// modelUnderTest is a model directory and the name it is reported under.
type modelUnderTest struct{ name, dir string }

// runEvaluation replays ds through the models (each behind a real scorer)
// and the baselines, scoring the events from split on.
func runEvaluation(ctx context.Context, ds *evaluation.Dataset, split int, models []modelUnderTest, o evalOptions, log *zap.Logger) (rep *evaluation.Report, err error) {
	var recs []evaluation.Recommender
	for _, m := range models {
		scfg := scorers.Config{Recommender: scorers.RecommenderModel, ModelDir: m.dir, DecayHalfLife: o.halfLife}
		if o.excludeSeen {
			// The scorer masks the items of these types from the user's
			// lists, the newest max_exclude of them.
			scfg.ExcludeTypes = ds.Types
			scfg.MaxExclude = evaluation.HarnessConfig{}.WithDefaults().SeenDepth
		}
		s, err := scorers.NewScorer(scfg, log.Named("scorer"))
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", m.name, err)
		}
		mr := evaluation.NewModelRecommender(m.name, s, ds)
		defer func() {
			mr.Close()
			if cerr := s.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close scorer of %s: %w", m.name, cerr))
			}
		}()
		recs = append(recs, mr)
	}
	hcfg := evaluation.HarnessConfig{K: o.k, EvalStart: split, Repeats: o.repeats, ExcludeSeen: o.excludeSeen}.WithDefaults()
	depth := hcfg.Depth()
	rcfg, err := o.retrievalConfig()
	if err != nil {
		return nil, usageError{err}
	}
	pipeline, err := evaluation.NewRetrieval(ds, evaluation.RetrievalConfig{Config: rcfg, ExcludeSeen: o.excludeSeen})
	if err != nil {
		return nil, err
	}
	recs = append(recs, pipeline)
	for _, source := range []string{"covisit", "transition", "trending", "popular"} {
		alone, err := pipeline.Alone(source)
		if err != nil {
			return nil, err
		}
		recs = append(recs, alone)
	}
	recs = append(recs,
		evaluation.NewPopularity(len(ds.Items), depth),
		evaluation.NewRecentPopularity(len(ds.Items), depth, o.recentWindow),
		evaluation.NewCooccurrence(len(ds.Items), len(ds.Users), evaluation.CooccurrenceConfig{Depth: depth}),
		evaluation.NewSessionKNN(len(ds.Items), len(ds.Users), evaluation.SessionKNNConfig{Depth: depth}),
	)
	bar := newProgress("evaluate", len(ds.Events))
	hcfg.Progress = bar.Set
	rep, err = evaluation.Evaluate(ctx, ds, recs, hcfg)
	bar.Done()
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// formatMs formats Unix ms as RFC 3339 (UTC).
func formatMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// formatSpan describes the time span of events [from, to).
func formatSpan(ds *evaluation.Dataset, from, to int) string {
	f, t := ds.Span(from, to)
	return formatMs(f) + " to " + formatMs(t)
}

// cliLogger is the logger of the offline commands: console lines on
// stderr at level.
func cliLogger(level string) (*zap.Logger, error) {
	return newLogger(config.LogConfig{Level: level, Format: "auto"})
}
