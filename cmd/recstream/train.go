package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/evaluation"
	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/training"
)

func newTrainCommand() *cobra.Command {
	var (
		src      sourceFlags
		tf       trainFlags
		ev       evalOptions
		out      string
		holdout  float64
		refit    bool
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Learn item embeddings from an event history and write a model directory",
		Long: `train reads an event history (a file in the event contract or a public data
set's format, or a range of a Kafka topic), learns item embeddings with
--method (als: implicit-feedback alternating least squares, the default and
the winner of the comparison; bpr: matrix factorisation with Bayesian
personalised ranking; item2vec: skip-gram over sessions), and writes a
versioned model directory: model.onnx (the built-in user tower), items.txt and
metadata.json.

Before the final model is trained, the last --holdout share of the events in
time is held out: a model trained on the rest is replayed over it through the
real scorer, beside the popularity, recent-popularity and co-occurrence
baselines (prequential HR, NDCG and MRR, as 'recstream eval' reports them).
The metrics, the data range and the parameters go into metadata.json under
"training". With --refit (the default) the model written is then trained on
all the events. The same input and --seed give the same model, bit for bit.`,
		Example: `  recstream generate --events 200000 --out history.jsonl --malformed-rate -1
  recstream train --input history.jsonl --out models/v1
  recstream train --input ml-100k/u.data --method bpr --out models/ml-bpr
  recstream train --brokers 127.0.0.1:9092 --topic clickstream.events \
      --from-time 2026-01-01T00:00:00Z --to-time 2026-01-08T00:00:00Z --out models/v2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{fmt.Errorf("--out is required")}
			}
			if !(holdout >= 0 && holdout < 1) {
				return usageError{fmt.Errorf("--holdout: must be in [0, 1), got %g", holdout)}
			}
			tcfg, err := tf.config(tf.method)
			if err != nil {
				return usageError{err}
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
			return trainWithHoldout(ctx, ds, tcfg, ev, holdout, refit, out, log, w)
		},
	}
	src.register(cmd)
	tf.register(cmd, "training method: als, bpr or item2vec")
	ev.register(cmd)
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "model directory to write (must not exist)")
	f.Float64Var(&holdout, "holdout", 0.1, "share of the events, last in time, held out to evaluate the model (0: no evaluation)")
	f.BoolVar(&refit, "refit", true, "after the evaluation, train the model written on all the events (false: write the evaluated model)")
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

// trainingRecord is what a model's metadata.json holds under "training".
type trainingRecord struct {
	// Method and Params are the training method and its parameters.
	Method string `json:"method"`
	Params any    `json:"params"`
	// Data describes the events the written model was trained on.
	Data dataRange `json:"data"`
	// Loss is the training loss per epoch or iteration (bpr, als).
	Loss []float64 `json:"loss,omitempty"`
	// Evaluation holds the hold-out evaluation, when one was run.
	Evaluation *holdoutRecord `json:"evaluation,omitempty"`
}

// dataRange says which events a model learned from.
type dataRange struct {
	Source string `json:"source"`
	Events int    `json:"events"`
	FromMs int64  `json:"from_ms"`
	ToMs   int64  `json:"to_ms"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// holdoutRecord is the evaluation of a model trained without the last
// events on those events.
type holdoutRecord struct {
	Holdout float64 `json:"holdout"`
	// Train is the data the evaluated model learned from; the scored part
	// is the rest (Report.EvalFromMs..EvalToMs).
	Train dataRange `json:"train"`
	// Refit says whether the written model was trained again on all data
	// after this evaluation (then these metrics estimate it).
	Refit  bool               `json:"refit"`
	Report *evaluation.Report `json:"report"`
}

func newDataRange(ds *evaluation.Dataset, from, to int) dataRange {
	f, t := ds.Span(from, to)
	return dataRange{Source: ds.Source, Events: to - from, FromMs: f, ToMs: t,
		From: formatMs(f), To: formatMs(t)}
}

// trainWithHoldout evaluates tcfg on the last holdout share of ds, then
// writes the model (trained on all events when refit) to dir.
func trainWithHoldout(ctx context.Context, ds *evaluation.Dataset, tcfg training.TrainConfig, ev evalOptions,
	holdout float64, refit bool, dir string, log *zap.Logger, w io.Writer) error {
	n := len(ds.Events)
	var evalRec *holdoutRecord
	var evaluated *training.TrainedEmbeddings
	split := ds.SplitIndex(1 - holdout)
	if holdout > 0 && split > 0 && split < n {
		fmt.Fprintf(w, "holding out the last %d events (%.0f%%) to evaluate a model trained on the first %d\n", n-split, 100*holdout, split)
		tmp, err := os.MkdirTemp("", "recstream-train-")
		if err != nil {
			return fmt.Errorf("temporary model directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		modelDir := filepath.Join(tmp, tcfg.Method)
		evaluated, err = trainToDir(ctx, ds.Interactions(0, split), tcfg, ev.modelTopK(), modelDir, nil, w)
		if err != nil {
			return err
		}
		rep, err := runEvaluation(ctx, ds, split, []modelUnderTest{{"model:" + tcfg.Method, modelDir}}, ev, log)
		if err != nil {
			return err
		}
		if err := evaluation.WriteTable(w, rep); err != nil {
			return err
		}
		if err := ev.writeOutputs(rep, w); err != nil {
			return err
		}
		evalRec = &holdoutRecord{Holdout: holdout, Train: newDataRange(ds, 0, split), Refit: refit, Report: rep}
	} else if holdout > 0 {
		fmt.Fprintf(w, "too few events to hold any out: no evaluation\n")
	}

	rec := trainingRecord{Method: tcfg.Method, Params: tcfg.Params(), Data: newDataRange(ds, 0, n), Evaluation: evalRec}
	var te *training.TrainedEmbeddings
	var err error
	if evaluated != nil && !refit {
		rec.Data = newDataRange(ds, 0, split)
		rec.Loss = evaluated.Loss
		te = evaluated
		err = writeTrained(te, ev.modelTopK(), dir, rec)
	} else {
		fmt.Fprintf(w, "training on all %d events\n", n)
		te, err = trainToDir(ctx, ds.Interactions(0, n), tcfg, ev.modelTopK(), dir, func(t *training.TrainedEmbeddings) any {
			rec.Loss = t.Loss
			return rec
		}, w)
	}
	if err != nil {
		return err
	}
	version, err := modelVersion(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote model %s (%s, %d items) to %s\n", version, te.Method, len(te.Items), dir)
	return nil
}

// trainToDir trains tcfg on history, showing progress, and writes the
// built-in model with K = topK to dir. record, when not nil, returns what
// the metadata records under "training"; nil records the method and its
// parameters.
func trainToDir(ctx context.Context, history []training.Interaction, tcfg training.TrainConfig, topK int, dir string,
	record func(*training.TrainedEmbeddings) any, w io.Writer) (*training.TrainedEmbeddings, error) {
	tcfg = tcfg.WithDefaults()
	bar := newProgress("train "+tcfg.Method, 0)
	te, err := training.Train(ctx, history, tcfg, bar.Set)
	bar.Done()
	if err != nil {
		return nil, fmt.Errorf("train %s on %d events: %w", tcfg.Method, len(history), err)
	}
	fmt.Fprintf(w, "  %s\n", te.Summary)
	var rec any = trainingRecord{Method: tcfg.Method, Params: tcfg.Params(), Loss: te.Loss}
	if record != nil {
		rec = record(te)
	}
	if err := writeTrained(te, topK, dir, rec); err != nil {
		return nil, err
	}
	return te, nil
}

// writeTrained writes te as a built-in model directory.
func writeTrained(te *training.TrainedEmbeddings, topK int, dir string, params any) error {
	spec := te.ModelSpec(params)
	spec.TopK = topK
	if err := models.WriteModelDir(dir, spec); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	return nil
}

// modelVersion reads the version of the model in dir.
func modelVersion(dir string) (string, error) {
	meta, err := models.ReadModelMetadata(dir)
	return meta.Version, err
}

// trainModel trains tcfg on history and writes the built-in model with K =
// topK to dir, showing progress; it returns the model's version.
func trainModel(ctx context.Context, history []training.Interaction, tcfg training.TrainConfig, topK int, dir string, w io.Writer) (string, error) {
	if _, err := trainToDir(ctx, history, tcfg, topK, dir, nil, w); err != nil {
		return "", err
	}
	return modelVersion(dir)
}

// trainDemoModel trains the default method on the first n valid events of
// gen, the history of the same synthetic world the live stream continues.
func trainDemoModel(ctx context.Context, gen *generator.Generator, n int, dir string, w io.Writer) (string, error) {
	history, err := generator.TrainingHistory(gen, n)
	if err != nil {
		return "", err
	}
	cfg := training.TrainConfig{}
	cfg.Item2Vec.Seed, cfg.BPR.Seed, cfg.ALS.Seed = 1, 1, 1
	return trainModel(ctx, history, cfg, models.DefaultTopK, dir, w)
}
