package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/evaluation"
	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/training"
)

// sourceFlags say where `train` and `eval` read events: a file in one of
// the loaders' formats, or a range of a Kafka topic.
type sourceFlags struct {
	input      string
	format     string
	mapping    string
	tsUnit     string
	minRating  float64
	brokers    string
	topic      string
	fromOffset int64
	toOffset   int64
	fromTime   string
	toTime     string
	configPath string
	minTs      string
}

func (s *sourceFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.input, "input", "", "event file to read")
	f.StringVar(&s.format, "format", string(evaluation.FormatAuto),
		"format of --input: auto (from the file name), jsonl (the event contract), movielens (u.data), movielens-csv (ratings.csv), retailrocket (events.csv), csv (with --map)")
	f.StringVar(&s.mapping, "map", "", "columns of a csv file: user=COL,item=COL,ts=COL[,type=COL] (header names or 0-based positions)")
	f.StringVar(&s.tsUnit, "ts-unit", "ms", "unit of the ts column of a csv file: s or ms")
	f.Float64Var(&s.minRating, "min-rating", 0, "MovieLens: drop ratings below this (0 keeps all)")
	f.StringVar(&s.brokers, "brokers", "", "read a Kafka topic instead of a file: brokers, comma-separated")
	f.StringVar(&s.topic, "topic", "clickstream.events", "Kafka topic (with --brokers)")
	f.Int64Var(&s.fromOffset, "from-offset", -1, "first offset read on each partition (-1: the start)")
	f.Int64Var(&s.toOffset, "to-offset", -1, "offset after the last read on each partition (-1: the end)")
	f.StringVar(&s.fromTime, "from-time", "", "read records logged at or after this time (RFC 3339 or Unix ms)")
	f.StringVar(&s.toTime, "to-time", "", "read records logged before this time (RFC 3339 or Unix ms)")
	f.StringVar(&s.minTs, "min-ts", "", "event contract (jsonl, Kafka): accept events from this time on (RFC 3339 or Unix ms; default 2000-01-01, for older history such as MovieLens 100K's 1997)")
	f.StringVar(&s.configPath, "config", "", "take Kafka brokers, TLS and SASL from this configuration file (with --brokers unset)")
}

// load reads the events the flags name.
func (s *sourceFlags) load(ctx context.Context, log *zap.Logger) (*evaluation.Dataset, error) {
	minTs, err := parseTimeFlag("min-ts", s.minTs)
	if err != nil {
		return nil, usageError{err}
	}
	switch {
	case s.input != "" && s.brokers != "":
		return nil, usageError{fmt.Errorf("--input and --brokers: name one source, not both")}
	case s.input != "":
		opts := evaluation.LoadOptions{Format: evaluation.Format(s.format), MinRating: s.minRating, MinTs: minTs}
		if opts.Format == evaluation.FormatCSV {
			m, err := evaluation.ParseCSVMapping(s.mapping, s.tsUnit)
			if err != nil {
				return nil, usageError{err}
			}
			opts.Mapping = m
		} else if s.mapping != "" {
			return nil, usageError{fmt.Errorf("--map: only for --format csv")}
		}
		ds, err := evaluation.LoadFile(ctx, s.input, opts)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		return ds, nil
	case s.brokers != "" || s.configPath != "":
		r := evaluation.KafkaRange{Topic: s.topic, FromOffset: s.fromOffset, ToOffset: s.toOffset, MinTs: minTs}
		if s.configPath != "" {
			kc, err := config.LoadKafka(s.configPath, os.Environ())
			if err != nil {
				return nil, usageError{err}
			}
			auth, err := kafkaauth.New(kc.Auth())
			if err != nil {
				return nil, usageError{fmt.Errorf("kafka.%w", err)}
			}
			r.Brokers, r.ClientOptions = kc.Brokers, auth.KgoOptions()
		}
		if s.brokers != "" {
			r.Brokers = strings.Split(s.brokers, ",")
		}
		if r.FromTime, err = parseTimeFlag("from-time", s.fromTime); err != nil {
			return nil, usageError{err}
		}
		if r.ToTime, err = parseTimeFlag("to-time", s.toTime); err != nil {
			return nil, usageError{err}
		}
		if err := r.Validate(); err != nil {
			return nil, usageError{err}
		}
		ds, err := evaluation.LoadKafka(ctx, r, log)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		return ds, nil
	}
	return nil, usageError{fmt.Errorf("--input or --brokers is required")}
}

// describe prints ds in one line, and a hint when events were skipped for
// a ts before the default lower bound.
func (s *sourceFlags) describe(w io.Writer, ds *evaluation.Dataset) {
	fmt.Fprintln(w, ds)
	if n := ds.SkippedBy[schemas.ReasonBadTimestamp]; n > 0 && s.minTs == "" {
		fmt.Fprintf(w, "hint: %d events had a ts out of range; history from before 2000-01-01 needs --min-ts (e.g. --min-ts 1990-01-01T00:00:00Z)\n", n)
	}
}

// parseTimeFlag parses RFC 3339 or Unix ms; "" is the zero time.
func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %q is neither RFC 3339 nor Unix ms", name, v)
	}
	return t, nil
}

// trainFlags are the training parameters `train` and `eval` share. A zero
// value leaves the method's default.
type trainFlags struct {
	method    string
	dim       int
	epochs    int
	seed      uint64
	window    int
	negatives int
	lr        float64
	reg       float64
	alpha     float64
	alsEmbed  string
	popScale  float64
}

func (t *trainFlags) register(cmd *cobra.Command, methodHelp string) {
	f := cmd.Flags()
	f.StringVar(&t.method, "method", training.DefaultMethod, methodHelp)
	f.IntVar(&t.dim, "dim", training.DefaultEmbeddingDim, "embedding dimensions")
	f.IntVar(&t.epochs, "epochs", 0, "item2vec and bpr epochs, als iterations (0: the method's default)")
	f.Uint64Var(&t.seed, "seed", 1, "random seed; the same data and seed give the same model")
	f.IntVar(&t.window, "window", 0, "item2vec: context window (0: default 5)")
	f.IntVar(&t.negatives, "negatives", 0, "item2vec: negative samples per pair (0: default 5)")
	f.Float64Var(&t.popScale, "popularity-scale", 0, "item2vec: scale rows by ln(1+count)^this (0: default 1, negative: unit rows)")
	f.Float64Var(&t.lr, "learning-rate", 0, "item2vec and bpr: starting learning rate (0: the method's default)")
	f.Float64Var(&t.reg, "regularization", 0, "bpr and als: L2 penalty (0: the method's default)")
	f.Float64Var(&t.alpha, "alpha", 0, "als: confidence scale (0: default)")
	f.StringVar(&t.alsEmbed, "als-embedding", "", "als: item embeddings written, fold_in or factors (empty: default fold_in)")
}

// methods returns the methods named by --method: one, a comma list, or
// "all".
func (t *trainFlags) methods() ([]string, error) {
	if t.method == "all" {
		return training.Methods(), nil
	}
	var out []string
	for _, m := range strings.Split(t.method, ",") {
		m = strings.TrimSpace(m)
		if _, err := t.config(m); err != nil {
			return nil, usageError{err}
		}
		out = append(out, m)
	}
	return out, nil
}

// config returns the training configuration of method with the flags.
func (t *trainFlags) config(method string) (training.TrainConfig, error) {
	c := training.TrainConfig{Method: method}
	c.Item2Vec = training.Item2VecConfig{Dim: t.dim, Epochs: t.epochs, Window: t.window, Negatives: t.negatives, LearningRate: t.lr, PopularityScale: t.popScale, Seed: t.seed}
	c.BPR = training.BPRConfig{Dim: t.dim, Epochs: t.epochs, LearningRate: t.lr, Regularization: t.reg, Seed: t.seed}
	c.ALS = training.ALSConfig{Dim: t.dim, Iterations: t.epochs, Regularization: t.reg, Alpha: t.alpha, Embedding: t.alsEmbed, Seed: t.seed}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("--method %s: %w", method, err)
	}
	return c, nil
}
