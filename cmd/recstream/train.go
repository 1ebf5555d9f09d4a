package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/recstream/recstream/internal/generator"
	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers"
)

func newTrainCommand() *cobra.Command {
	var (
		input string
		out   string
		tcfg  scorers.Item2VecConfig
		topK  int
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Learn item embeddings from an event history and write a model directory",
		Long: `train reads an event history (JSON lines in the event contract), learns item
embeddings with item2vec (skip-gram with negative sampling over users'
sessions), and writes a versioned model directory: model.onnx (the built-in
user tower), items.txt and metadata.json. Invalid lines are counted and
skipped. The same input and --seed give the same model, bit for bit.`,
		Example: `  recstream generate --events 200000 --out history.jsonl
  recstream train --input history.jsonl --out models/v1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" || out == "" {
				return usageError{fmt.Errorf("--input and --out are required")}
			}
			f, err := os.Open(input)
			if err != nil {
				return fmt.Errorf("open history: %w", err)
			}
			defer f.Close()
			history, skipped, err := readInteractions(f)
			if err != nil {
				return fmt.Errorf("read history %s: %w", input, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "read %d events from %s (%d invalid lines skipped)\n", len(history), input, skipped)
			version, err := trainModel(cmd.Context(), history, tcfg, topK, out, w)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote model %s to %s\n", version, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "event history, JSON lines")
	f.StringVar(&out, "out", "", "model directory to write (must not exist)")
	f.IntVar(&tcfg.Dim, "dim", 64, "embedding dimensions")
	f.IntVar(&tcfg.Epochs, "epochs", 5, "passes over the history")
	f.IntVar(&tcfg.Window, "window", 5, "context window")
	f.IntVar(&tcfg.Negatives, "negatives", 5, "negative samples per pair")
	f.Uint64Var(&tcfg.Seed, "seed", 1, "random seed")
	f.IntVar(&topK, "top-k", scorers.DefaultTopK, "items per recommendation")
	return cmd
}

// readInteractions decodes a JSON-lines event history, skipping invalid lines.
func readInteractions(r io.Reader) ([]scorers.Interaction, int, error) {
	dec := schemas.NewEventDecoder(schemas.EventLimits{}.WithDefaults())
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		out     []scorers.Interaction
		skipped int
		ev      schemas.Event
	)
	for sc.Scan() {
		// Event times of a history file may be far in the past; only the
		// future-skew check uses this time.
		if derr := dec.Decode(nil, sc.Bytes(), time.Now(), &ev); derr != nil {
			skipped++
			continue
		}
		out = append(out, scorers.Interaction{User: string(ev.UserID), Item: string(ev.ItemID), Type: ev.Type, TsMs: ev.TsMs})
	}
	if err := sc.Err(); err != nil {
		return nil, skipped, err
	}
	return out, skipped, nil
}

// trainModel trains item2vec on history and writes the built-in model to dir,
// showing progress; it returns the model's version.
func trainModel(ctx context.Context, history []scorers.Interaction, tcfg scorers.Item2VecConfig, topK int, dir string, w io.Writer) (string, error) {
	bar := newProgress("train item2vec", 0)
	res, err := scorers.TrainItem2Vec(ctx, history, tcfg, bar.Set)
	bar.Done()
	if err != nil {
		return "", fmt.Errorf("train item2vec on %d events: %w", len(history), err)
	}
	fmt.Fprintf(w, "  learned %d item embeddings from %d sessions\n", len(res.Items), res.Sequences)
	err = scorers.WriteModelDir(dir, scorers.ModelSpec{
		Items: res.Items, Embeddings: res.Embeddings, Counts: res.Counts,
		TopK: topK, DataFromMs: res.FromMs, DataToMs: res.ToMs, Training: tcfg.WithDefaults(),
	})
	if err != nil {
		return "", fmt.Errorf("write model dir %s: %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, schemas.ModelFileMetadata))
	if err != nil {
		return "", fmt.Errorf("read the model just written: %w", err)
	}
	var meta scorers.ModelMetadata
	if err := json.Unmarshal(raw, &meta); err != nil {
		return "", fmt.Errorf("read %s: %w", schemas.ModelFileMetadata, err)
	}
	return meta.Version, nil
}

// trainDemoModel trains on the first n valid events of gen, the history of
// the same synthetic world the live stream continues.
func trainDemoModel(ctx context.Context, gen *generator.Generator, n int, dir string, w io.Writer) (string, error) {
	dec := schemas.NewEventDecoder(schemas.EventLimits{}.WithDefaults())
	history := make([]scorers.Interaction, 0, n)
	var ev schemas.Event
	for len(history) < n {
		r := gen.Next()
		if r.Kind != generator.KindValid {
			continue
		}
		if derr := dec.Decode(r.Key, r.Value, r.Time, &ev); derr != nil {
			return "", fmt.Errorf("generator wrote an invalid event: %v", derr)
		}
		history = append(history, scorers.Interaction{User: string(ev.UserID), Item: string(ev.ItemID), Type: ev.Type, TsMs: ev.TsMs})
	}
	return trainModel(ctx, history, scorers.Item2VecConfig{Seed: 1}, scorers.DefaultTopK, dir, w)
}
