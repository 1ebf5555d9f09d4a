package scorers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
)

// Devices a model can be scored on (Config.Device).
const (
	DeviceAuto = "auto"
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// engine is one loaded model ready to score: its shapes settled against the
// configuration, and either an ONNX Runtime session (CPU) or the GPU tower.
// An engine is made off the hot path (at start-up, or by a reload) and
// used by one Score at a time.
type engine struct {
	model    *models.Model
	name     string // registry version (directory name), or the model directory
	version  string // model_version of the records it produces
	contract schemas.ModelContract
	device   string // DeviceCPU or DeviceCUDA

	width               int // D of a stateful model, H of a sequence model
	steps, modelK, topK int
	exclude             int     // most bought items kept per user
	excludeWidth        int     // M of the exclude_items input; 0 when the model has none
	batch               int     // most users per run
	fixedBatch          bool    // runs are padded to batch
	typeInput           []int64 // type code -> event_types value; 0 = contributes nothing
	excludeType         []bool  // type code -> its item goes to the exclude list
	inputs, outputs     []string
	session             *ort.DynamicAdvancedSession
	run                 runBuffers
	gpu                 *gpuTower
	// remap maps the item indices of remapFrom (the engine serving when
	// this one was loaded) to this engine's; nil when they are the same.
	// adopt recomputes it if another engine came to serve in between.
	remapFrom *engine
	remap     []int32
	// filterExclude is set when the model has no exclude_items input: the
	// scorer then drops the user's bought items from its output itself.
	filterExclude bool
}

// runBuffers back the tensors of one session run of up to batch users.
type runBuffers struct {
	state   []float32
	items   []int64
	types   []int64
	decays  []float32
	hist    []int64
	exclude []int64
	newS    []float32
	scores  []float32
	topIdx  []int64
	full    []ort.Value // tensors over the whole buffers (runs of batch users)
}

// loadEngine loads the model directory dir, checks it against its contract
// and the configuration, and readies it on the device: the GPU when gpu is
// open and the model is the built-in user tower, else ONNX Runtime on CPU.
// name is what logs and the registry call it.
func (s *Scorer) loadEngine(ctx context.Context, dir, name string) (*engine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := s.cfg
	model, err := models.LoadModelDir(dir)
	if err != nil {
		return nil, err
	}
	e := &engine{model: model, name: name, contract: model.Contract}
	if err := e.resolveShapes(cfg); err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	weights, err := models.TypeWeightVector(cfg.EventTypes, cfg.TypeWeights)
	if err != nil {
		return nil, err
	}
	onnx, patched, err := models.ReplaceFloatInitializer(model.ONNX, schemas.ModelInitTypeWeights, weights)
	if err != nil {
		return nil, fmt.Errorf("set type weights in %s: %w", dir, err)
	}
	e.version = model.Meta.Version
	switch {
	case patched && !sameTypeWeights(model.Meta, cfg.EventTypes, weights):
		e.version += "+tw" + weightsHash(cfg.EventTypes, weights)
	case !patched && e.contract == schemas.ModelContractStateful:
		s.log.Warn("model has no type_weights initializer: type_weights of the configuration are not applied",
			zap.String("model_dir", dir))
	}
	e.typeInput = make([]int64, 256)
	e.excludeType = make([]bool, 256)
	for code, typeName := range cfg.EventTypes {
		if weights[code+1] > 0 {
			e.typeInput[code] = int64(code + 1)
		}
		e.excludeType[code] = slices.Contains(cfg.ExcludeTypes, typeName)
	}

	e.device = DeviceCPU
	tower := model.Meta.Kind == models.ModelKindUserTower && e.contract == schemas.ModelContractStateful
	switch {
	case cfg.Device == DeviceCPU:
	case s.ranker != nil && tower:
		e.device = DeviceCUDA
	case cfg.Device == DeviceCUDA:
		// NewScorer fails when the GPU cannot be opened, so here the model
		// is what the GPU cannot run.
		return nil, fmt.Errorf("device cuda: model %s (kind %q, %s contract) cannot run on the GPU: only the built-in user tower (kind %q) does; set device: auto or cpu to score it with ONNX Runtime on CPU",
			e.version, model.Meta.Kind, e.contract, models.ModelKindUserTower)
	case s.ranker != nil:
		s.log.Info("device auto: scoring on CPU with ONNX Runtime: only the built-in user tower runs on the GPU",
			zap.String("model_version", e.version), zap.String("kind", model.Meta.Kind), zap.String("contract", string(e.contract)))
	}

	if e.device == DeviceCUDA {
		if e.gpu, err = newGPUTower(s.ranker, onnx, weights, e, cfg.BatchUsers); err != nil {
			return nil, fmt.Errorf("load %s on the GPU: %w", dir, err)
		}
		e.batch, e.fixedBatch = e.gpu.rows, false
	} else {
		e.inputs, e.outputs = e.tensorNames()
		e.session, err = s.rt.NewSession(onnx, e.inputs, e.outputs, onnxruntime.SessionOptions{
			IntraOpThreads: cfg.IntraOpThreads, AllowSpinning: cfg.allowSpinning,
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		e.allocRun()
		if e.run.full, err = e.tensors(e.batch); err != nil {
			e.close()
			return nil, err
		}
	}
	// The session (or the GPU) holds its own copy; the bytes can be large.
	model.ONNX = nil
	e.filterExclude = !model.HasExclude
	return e, nil
}

// resolveShapes settles L, H, M, K and the batch size between the
// configuration and the model's fixed dimensions.
func (e *engine) resolveShapes(cfg Config) error {
	m := e.model
	switch e.contract {
	case schemas.ModelContractStateful:
		e.width = m.Dim
		switch {
		case m.Steps > 0 && cfg.StepsPerRound != 0 && cfg.StepsPerRound != m.Steps:
			return fmt.Errorf("steps_per_round: %d, but the model has a fixed L=%d", cfg.StepsPerRound, m.Steps)
		case m.Steps > 0:
			e.steps = m.Steps
		default:
			e.steps = cmp.Or(cfg.StepsPerRound, models.DefaultSteps)
		}
	case schemas.ModelContractSequence:
		switch {
		case m.History > 0 && cfg.HistoryLen != 0 && cfg.HistoryLen != m.History:
			return fmt.Errorf("history_len: %d, but the model has a fixed H=%d", cfg.HistoryLen, m.History)
		case m.History > 0:
			e.width = m.History
		default:
			e.width = cmp.Or(cfg.HistoryLen, models.DefaultHistory)
		}
		if e.width > maxHistoryLen {
			return fmt.Errorf("history_len: the model's H=%d exceeds %d", e.width, maxHistoryLen)
		}
	default:
		return fmt.Errorf("unknown model contract %q", e.contract)
	}
	e.exclude, e.excludeWidth = cfg.MaxExclude, cfg.MaxExclude
	if m.Exclude > 0 {
		// A fixed M bounds the list; shorter lists are padded to it.
		e.exclude, e.excludeWidth = min(cfg.MaxExclude, m.Exclude), m.Exclude
	}
	if !m.HasExclude {
		e.excludeWidth = 0
	}
	e.modelK = m.TopK
	if e.modelK <= 0 {
		// A dynamic K is only known after a run; size the buffers for the
		// configured K and check the run's output shape.
		e.modelK = cmp.Or(cfg.TopK, models.DefaultTopK)
	}
	topK := cfg.TopK
	if cfg.Recommender == RecommenderRetrieval {
		topK = 0 // the records' top_k is the retrieval's; the model keeps its K
	}
	if topK > e.modelK {
		return fmt.Errorf("top_k: %d, but the model returns K=%d", topK, e.modelK)
	}
	e.topK = cmp.Or(topK, e.modelK)
	e.batch = cfg.BatchUsers
	if e.batch == 0 {
		e.batch = min(DefaultBatchUsers, max(1, maxScoreBytes/(4*(len(m.Items)+1))))
	}
	if m.Batch > 0 {
		e.batch, e.fixedBatch = m.Batch, true
	}
	return nil
}

// tensorNames returns the inputs and outputs the session is run with, in
// the order of the contract, leaving out an optional input the model lacks.
func (e *engine) tensorNames() (in, out []string) {
	for _, t := range schemas.ModelContractInputs(e.contract) {
		if t.Name == schemas.ModelInputExcludeItems && e.excludeWidth == 0 {
			continue
		}
		in = append(in, t.Name)
	}
	for _, t := range schemas.ModelContractOutputs(e.contract) {
		out = append(out, t.Name)
	}
	return in, out
}

func (e *engine) allocRun() {
	b, l, m, k := e.batch, e.steps, e.excludeWidth, e.modelK
	r := runBuffers{
		exclude: make([]int64, b*m),
		scores:  make([]float32, b*k),
		topIdx:  make([]int64, b*k),
	}
	if e.contract == schemas.ModelContractStateful {
		d := e.width
		r.state, r.newS = make([]float32, b*d), make([]float32, b*d)
		r.items, r.types, r.decays = make([]int64, b*l), make([]int64, b*l), make([]float32, b*l)
	} else {
		r.hist = make([]int64, b*e.width)
	}
	e.run = r
}

// tensors returns the inputs then outputs of a run of b users, over the
// run buffers, in the order of e.inputs and e.outputs.
func (e *engine) tensors(b int) (vals []ort.Value, err error) {
	r := &e.run
	bb := int64(b)
	l, w, m, k := int64(e.steps), int64(e.width), int64(e.excludeWidth), int64(e.modelK)
	vals = make([]ort.Value, 0, 8)
	add := func(v ort.Value, e error) {
		if e != nil {
			err = errors.Join(err, e)
			return
		}
		vals = append(vals, v)
	}
	if e.contract == schemas.ModelContractStateful {
		add(ort.NewTensor(ort.NewShape(bb, w), r.state[:b*int(w)]))
		add(ort.NewTensor(ort.NewShape(bb, l), r.items[:b*int(l)]))
		add(ort.NewTensor(ort.NewShape(bb, l), r.types[:b*int(l)]))
		add(ort.NewTensor(ort.NewShape(bb, l), r.decays[:b*int(l)]))
		add(ort.NewTensor(ort.NewShape(bb, m), r.exclude[:b*int(m)]))
		add(ort.NewTensor(ort.NewShape(bb, w), r.newS[:b*int(w)]))
	} else {
		add(ort.NewTensor(ort.NewShape(bb, w), r.hist[:b*int(w)]))
		if m > 0 {
			add(ort.NewTensor(ort.NewShape(bb, m), r.exclude[:b*int(m)]))
		}
	}
	add(ort.NewTensor(ort.NewShape(bb, k), r.scores[:b*int(k)]))
	add(ort.NewTensor(ort.NewShape(bb, k), r.topIdx[:b*int(k)]))
	if err != nil {
		destroyAll(vals)
		return nil, fmt.Errorf("create tensors for %d users: %w", b, err)
	}
	return vals, nil
}

func destroyAll(vals []ort.Value) {
	for _, v := range vals {
		if v != nil {
			v.Destroy()
		}
	}
}

// close releases the session or the GPU tower.
func (e *engine) close() error {
	var errs []error
	destroyAll(e.run.full)
	e.run.full = nil
	if e.session != nil {
		errs = append(errs, e.session.Destroy())
		e.session = nil
	}
	if e.gpu != nil {
		errs = append(errs, e.gpu.close())
		e.gpu = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close model %s: %w", e.version, err)
	}
	return nil
}

// storeLayout returns the state store shape the engine needs: float state
// width, history length.
func (e *engine) storeLayout() (dim, histLen int) {
	if e.contract == schemas.ModelContractSequence {
		return 0, e.width
	}
	return e.width, 0
}

// itemRemap returns, for each item index of from, the index of the same
// item in to (0 when to does not know it); nil when both models have the
// same items in the same order.
func itemRemap(from, to *models.Model) []int32 {
	if slices.Equal(from.Items, to.Items) {
		return nil
	}
	remap := make([]int32, len(from.Items)+1)
	for i, id := range from.Items {
		remap[i+1] = to.ItemIndex(id)
	}
	return remap
}
