package scorers

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/cuda"
	"github.com/recstream/recstream/scorers/models"
)

// maxGPUScoreBytes bounds one GPU call's score matrix (users x items
// float32) when batch_users is 0.
const maxGPUScoreBytes = 1 << 30

// defaultGPUBatchUsers is the most users per GPU call when batch_users is 0
// and the score matrix allows it.
const defaultGPUBatchUsers = 4096

// topKRanker ranks items for users as cuda.TopKScorer does (the tests
// substitute a plain Go one to run the scorer's GPU path on any machine).
type topKRanker interface {
	Score(states []float32, exclude []int32, rows int, topScores []float32, topItems []int32) error
	Close() error
}

// newRanker makes the ranker of one model: on the GPU, or the tests' own.
type newRanker func(cuda.TopKConfig) (topKRanker, error)

// openDevice opens the GPU for Config.Device and returns how to make a
// ranker on it: nil and no error when the device is cpu, or auto and no
// GPU can be used (the log says why); an error when the device is cuda and
// the GPU cannot be used.
func openDevice(cfg Config, log *zap.Logger) (*cuda.Device, newRanker, error) {
	if cfg.Device == DeviceCPU {
		return nil, nil, nil
	}
	if cfg.rankerForTest != nil {
		return nil, cfg.rankerForTest, nil
	}
	dev, err := cuda.Open(cuda.Options{LibraryDir: cfg.CUDALibraryDir})
	if err != nil {
		if cfg.Device == DeviceCUDA {
			return nil, nil, fmt.Errorf("device cuda: %w", err)
		}
		log.Info("device auto: no usable GPU, scoring on CPU with ONNX Runtime", zap.String("reason", err.Error()))
		return nil, nil, nil
	}
	log.Info("GPU opened: the built-in user tower is scored on it",
		zap.String("gpu", dev.String()), zap.Strings("libraries", dev.Libraries()))
	return dev, func(c cuda.TopKConfig) (topKRanker, error) { return dev.NewTopKScorer(c) }, nil
}

// gpuTower scores the built-in user tower with the GPU: the state update,
// a few elementwise float32 operations per event, runs in Go with exactly
// the graph's operations (so states are bit-identical to ONNX Runtime's),
// and the scores, state · Eᵀ + prior masked and ranked, run on the GPU
// (cuda.TopKScorer).
type gpuTower struct {
	dim     int
	emb     []float32 // [N+1, D], as in the graph
	weights []float32 // [T+1], the configured type weights
	topk    topKRanker
	rows    int // users per GPU call
	k, m    int // K returned, M exclude entries per user
	states  []float32
	exclude []int32
	outS    []float32
	outI    []int32
}

// newGPUTower reads the tower's item embeddings and prior out of the model
// (with the configured type weights in place) and uploads them. batchUsers
// is the configured users per call (0: up to 4096, within 1 GiB of
// scores).
func newGPUTower(ranker newRanker, onnx []byte, weights []float32, e *engine, batchUsers int) (*gpuTower, error) {
	embDims, emb, ok, err := models.ReadFloatInitializer(onnx, schemas.ModelInitItemEmbeddings)
	if err == nil && !ok {
		err = fmt.Errorf("the model has no %s initializer", schemas.ModelInitItemEmbeddings)
	}
	if err != nil {
		return nil, err
	}
	n1 := len(e.model.Items) + 1
	if len(embDims) != 2 || embDims[0] != int64(n1) || embDims[1] != int64(e.width) {
		return nil, fmt.Errorf("%s has shape %v, want [%d, %d]", schemas.ModelInitItemEmbeddings, embDims, n1, e.width)
	}
	priorDims, prior, ok, err := models.ReadFloatInitializer(onnx, schemas.ModelInitItemPrior)
	if err == nil && (!ok || len(priorDims) != 1 || priorDims[0] != int64(n1)) {
		err = fmt.Errorf("%s is missing or not of shape [%d]", schemas.ModelInitItemPrior, n1)
	}
	if err != nil {
		return nil, err
	}
	rows := batchUsers
	if rows == 0 {
		rows = min(defaultGPUBatchUsers, max(1, maxGPUScoreBytes/(4*n1)))
	}
	g := &gpuTower{dim: e.width, emb: emb, weights: weights, rows: rows, k: e.modelK, m: e.excludeWidth}
	g.topk, err = ranker(cuda.TopKConfig{
		Items: emb, Prior: prior, Dim: e.width, K: e.modelK, MaxRows: rows, MaxExclude: e.excludeWidth,
	})
	if err != nil {
		return nil, err
	}
	g.states = make([]float32, rows*g.dim)
	g.exclude = make([]int32, rows*g.m)
	g.outS = make([]float32, rows*g.k)
	g.outI = make([]int32, rows*g.k)
	return g, nil
}

// update applies one user's events to state in place, exactly as a step of
// the built-in graph: state = state*decay + weight(type)*embedding(item),
// each product and the sum rounded to float32 on its own (the conversions
// forbid fusing them into an FMA).
func (g *gpuTower) update(state []float32, items, types []int64, decays []float32) {
	d := g.dim
	for l, item := range items {
		w := g.weights[types[l]]
		e := g.emb[int(item)*d : int(item)*d+d]
		decay := decays[l]
		for j := range state {
			state[j] = float32(state[j]*decay) + float32(e[j]*w)
		}
	}
}

func (g *gpuTower) close() error {
	if g.topk == nil {
		return nil
	}
	err := g.topk.Close()
	g.topk = nil
	return err
}
