package benchmark

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/recstream/recstream/cmd/recstream/internal/generator"
	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
)

// Topics of a benchmark run on the in-process broker.
const (
	InputTopic      = "clickstream.events"
	DeadLetterTopic = "clickstream.dlq"
)

// dataset is the one data set every stage measures: the generated input
// records, the model scored with, and (once the consumer stage has run) the
// event batches the consumer cut from the input topic and the
// recommendation batches the scorer made of them.
type dataset struct {
	records []generator.Record
	bytes   int // keys and values of records
	kinds   map[string]int

	model    models.ModelSpec
	modelDir string
	// emb and prior are the model's item embeddings ([N+1, D], row 0 the
	// padding item) and popularity prior, for the plain Go loop.
	emb   []float32
	prior []float32

	events []*schemas.EventBatch
	recs   []*schemas.RecommendationBatch
}

// newDataset generates cfg.Events records and writes a model of cfg.Items
// items (random unit embeddings of cfg.Dim values, popularity counts from
// the records) into dir.
func newDataset(cfg Config, dir string) (*dataset, error) {
	gen := generator.New(generator.Config{Seed: cfg.Seed, Users: cfg.Users, Items: cfg.Items,
		Start: time.Now().Add(-24 * time.Hour)})
	d := &dataset{records: make([]generator.Record, cfg.Events), kinds: map[string]int{}}
	for i := range d.records {
		r := gen.Next()
		d.records[i] = r
		d.bytes += len(r.Key) + len(r.Value)
		d.kinds[r.Kind]++
	}

	// Popularity counts from the data, so that the prior is realistic.
	cats := gen.Config().Categories
	index := make(map[string]int, cfg.Items)
	spec := models.ModelSpec{
		Version: fmt.Sprintf("bench-%d-%d-%d", cfg.Items, cfg.Dim, cfg.Seed),
		Items:   make([]string, cfg.Items),
		Counts:  make([]int64, cfg.Items),
	}
	for i := range spec.Items {
		spec.Items[i] = generator.ItemID(i, cats)
		index[spec.Items[i]] = i
	}
	dec := schemas.NewEventDecoder(schemas.EventLimits{})
	var ev schemas.Event
	for _, r := range d.records {
		if r.Kind != generator.KindValid {
			continue
		}
		if err := dec.Decode(r.Key, r.Value, r.Time, &ev); err == nil {
			if i, ok := index[string(ev.ItemID)]; ok {
				spec.Counts[i]++
			}
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xbe7c4))
	spec.Embeddings = make([][]float32, cfg.Items)
	for i := range spec.Embeddings {
		row := make([]float32, cfg.Dim)
		var ss float64
		for j := range row {
			v := rng.NormFloat64()
			row[j] = float32(v)
			ss += v * v
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / math.Sqrt(ss))
		}
		spec.Embeddings[i] = row
	}
	d.model = spec
	d.modelDir = filepath.Join(dir, "model")
	if err := models.WriteModelDir(d.modelDir, spec); err != nil {
		return nil, fmt.Errorf("write benchmark model: %w", err)
	}

	d.emb = make([]float32, (cfg.Items+1)*cfg.Dim)
	for i, row := range spec.Embeddings {
		copy(d.emb[(i+1)*cfg.Dim:], row)
	}
	d.prior = popularityPrior(spec.Counts)
	return d, nil
}

// popularityPrior mirrors the built-in model's prior (index 0 is the
// padding item, masked): DefaultPriorWeight * log(1+count) / log(1+max count).
func popularityPrior(counts []int64) []float32 {
	prior := make([]float32, len(counts)+1)
	prior[0] = schemas.ModelMaskedScore
	var top int64
	for _, c := range counts {
		top = max(top, c)
	}
	if top == 0 {
		return prior
	}
	den := math.Log1p(float64(top))
	for i, c := range counts {
		prior[i+1] = float32(models.DefaultPriorWeight * math.Log1p(float64(c)) / den)
	}
	return prior
}

// valid is the number of valid events in the data set.
func (d *dataset) valid() int { return d.kinds[generator.KindValid] }

// releaseBatches frees the held event and recommendation batches.
func (d *dataset) releaseBatches() {
	for _, b := range d.events {
		b.Release()
	}
	for _, r := range d.recs {
		r.Release()
	}
	d.events, d.recs = nil, nil
}

// produceInput writes the data set once to the input topic with franz-go
// (keyed by user id, so each user's events stay in one partition).
func (r *run) produceInput(ctx context.Context) error {
	r.progress("producing the data set (%d records, %.1f MB) to %s", len(r.data.records), float64(r.data.bytes)/1e6, InputTopic)
	if _, err := produceFranz(ctx, r.brokers(), InputTopic, messagesOf(r.data.records), false); err != nil {
		return fmt.Errorf("produce the data set: %w", err)
	}
	return nil
}

// sinkBatches returns the first Config.SinkBatches event batches and their
// recommendation batches: what the sink stages write.
func (r *run) sinkBatches() ([]*schemas.EventBatch, []*schemas.RecommendationBatch) {
	n := min(r.cfg.SinkBatches, len(r.data.events), len(r.data.recs))
	events, recs := r.data.events[:n], r.data.recs[:n]
	r.report.Data.SinkRecords, r.report.Data.SinkRecommendations = 0, 0
	for i := range events {
		r.report.Data.SinkRecords += events[i].Records
		r.report.Data.SinkRecommendations += int(recs[i].Recs.NumRows())
	}
	return events, recs
}
