package models

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/recstream/recstream/schemas"
)

// WriteModelDir writes the built-in model of spec into dir, which must not
// exist yet or be empty (a model directory is never changed once written:
// a new model is a new directory). It writes into a temporary sibling and
// renames it, so dir is either complete or absent.
func WriteModelDir(dir string, spec ModelSpec) error {
	files, err := buildModelFiles(spec)
	if err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	return writeModelFiles(dir, files)
}

// writeModelFiles writes files into dir through a temporary sibling renamed
// into place, so dir is either complete or absent.
func writeModelFiles(dir string, files []modelFile) error {
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) > 0 {
			return fmt.Errorf("write model dir %s: directory exists and is not empty", dir)
		}
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("write model dir %s: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := writeFileSync(filepath.Join(tmp, f.name), f.data); err != nil {
			return fmt.Errorf("write model dir %s: %w", dir, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write model dir %s: %w", dir, err)
	}
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// itemTable checks a model's item ids, embeddings and counts, and returns
// the embedding width, items.txt, and the embedding table with its padding
// row 0 (all zeros) first; transform, when set, maps every value.
func itemTable(ids []string, embeddings [][]float32, counts []int64, transform func(float32) float32) (dim int, itemsTxt []byte, emb []float32, err error) {
	n := len(ids)
	if n == 0 {
		return 0, nil, nil, errors.New("items: none given")
	}
	if len(embeddings) != n {
		return 0, nil, nil, fmt.Errorf("embeddings: %d rows for %d items", len(embeddings), n)
	}
	if counts != nil && len(counts) != n {
		return 0, nil, nil, fmt.Errorf("counts: %d values for %d items", len(counts), n)
	}
	dim = len(embeddings[0])
	if dim == 0 {
		return 0, nil, nil, errors.New("embeddings: rows are empty")
	}
	seen := make(map[string]struct{}, n)
	var items bytes.Buffer
	emb = make([]float32, (n+1)*dim)
	for i, id := range ids {
		if id == "" || strings.ContainsAny(id, "\r\n") {
			return 0, nil, nil, fmt.Errorf("items: id %d (%q) is empty or holds a line break", i, id)
		}
		if _, dup := seen[id]; dup {
			return 0, nil, nil, fmt.Errorf("items: id %q appears twice", id)
		}
		seen[id] = struct{}{}
		items.WriteString(id)
		items.WriteByte('\n')
		row := embeddings[i]
		if len(row) != dim {
			return 0, nil, nil, fmt.Errorf("embeddings: row %d has %d values, want %d", i, len(row), dim)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, nil, nil, fmt.Errorf("embeddings: row %d holds %g", i, v)
			}
			if transform != nil {
				v = transform(v)
			}
			emb[(i+1)*dim+j] = v
		}
	}
	return dim, items.Bytes(), emb, nil
}

// priorWeightOrDefault reads ModelSpec.PriorWeight's convention: 0 means
// the default, a negative value no prior.
func priorWeightOrDefault(w float32) float32 {
	switch {
	case w == 0:
		return DefaultPriorWeight
	case w < 0:
		return 0
	}
	return w
}

type modelFile struct {
	name string
	data []byte
}

// buildModelFiles checks spec and returns the three files of its directory.
func buildModelFiles(spec ModelSpec) ([]modelFile, error) {
	n := len(spec.Items)
	dim, items, emb, err := itemTable(spec.Items, spec.Embeddings, spec.Counts, FlushTiny)
	if err != nil {
		return nil, err
	}
	types := spec.EventTypes
	if types == nil {
		types = schemas.DefaultEventTypes()
	}
	weightsByName := spec.TypeWeights
	if weightsByName == nil {
		weightsByName = DefaultTypeWeights()
	}
	typeWeights, err := TypeWeightVector(types, weightsByName)
	if err != nil {
		return nil, err
	}
	topK := cmp.Or(spec.TopK, DefaultTopK)
	steps := cmp.Or(spec.Steps, DefaultSteps)
	priorWeight := priorWeightOrDefault(spec.PriorWeight)

	prior := PopularityPrior(spec.Counts, n, priorWeight)
	g := &UserTowerGraph{
		Dim:            dim,
		Steps:          steps,
		TopK:           topK,
		Batch:          spec.Batch,
		ItemEmbeddings: emb,
		TypeWeights:    typeWeights,
		ItemPrior:      prior,
		Metadata:       map[string]string{"kind": "recstream_" + ModelKindUserTower},
	}
	model, err := BuildUserTower(g)
	if err != nil {
		return nil, err
	}
	meta := ModelMetadata{
		Version:     spec.Version,
		Kind:        ModelKindUserTower,
		CreatedAt:   spec.CreatedAt,
		Dim:         dim,
		NumItems:    n,
		TopK:        min(topK, n+1),
		Steps:       steps,
		EventTypes:  types,
		TypeWeights: typeWeights[1:],
		PriorWeight: priorWeight,
		DataFromMs:  spec.DataFromMs,
		DataToMs:    spec.DataToMs,
	}
	if spec.Training != nil {
		tr, err := json.Marshal(spec.Training)
		if err != nil {
			return nil, fmt.Errorf("training parameters: %w", err)
		}
		meta.Training = tr
	}
	return modelDirFiles(model, items, meta, "ut-")
}

// modelDirFiles completes meta for the graph model — its checksum, a
// version derived from it ("ut-" or "sq-" and 12 hex digits) unless one is
// given, the creation time unless given — and returns a model directory's
// files: the one place their layout is written.
func modelDirFiles(model, items []byte, meta ModelMetadata, versionPrefix string) ([]modelFile, error) {
	sum := sha256.Sum256(model)
	meta.ModelSHA256 = hex.EncodeToString(sum[:])
	if meta.Version == "" {
		meta.Version = versionPrefix + hex.EncodeToString(sum[:6])
	}
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now()
	}
	meta.CreatedAt = meta.CreatedAt.UTC()
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return []modelFile{
		{schemas.ModelFileONNX, model},
		{schemas.ModelFileItems, items},
		{schemas.ModelFileMetadata, append(metaJSON, '\n')},
	}, nil
}

// FlushTiny maps values too small to matter, and -0, to +0. With every
// embedding value either +0 or at least 1e-20 in magnitude, weight *
// embedding never underflows to -0 (see UserTowerGraph).
func FlushTiny(v float32) float32 {
	if v > -1e-20 && v < 1e-20 {
		return 0
	}
	return v
}

// PopularityPrior returns [n+1] priors: ModelMaskedScore for index 0, then
// weight * log(1+count) / log(1+max count).
func PopularityPrior(counts []int64, n int, weight float32) []float32 {
	prior := make([]float32, n+1)
	prior[0] = schemas.ModelMaskedScore
	var maxCount int64
	for _, c := range counts {
		maxCount = max(maxCount, c)
	}
	if maxCount == 0 || weight == 0 {
		return prior
	}
	norm := math.Log1p(float64(maxCount))
	for i, c := range counts {
		if c > 0 {
			prior[i+1] = float32(float64(weight) * math.Log1p(float64(c)) / norm)
		}
	}
	return prior
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
