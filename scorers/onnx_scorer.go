package scorers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/cuda"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/onnxruntime"
	"github.com/recstream/recstream/scorers/state"
)

// Scorer refreshes the recommendations of the users of each event batch:
// it applies their events to their states and returns one recommendation
// record per refreshed user. With Config.Recommender "retrieval", the
// default, the states are the streaming item index of each input
// partition and the users' recent items, and no model runs (see
// retrievalStage); with "model", what follows applies.
//
// Two kinds of model are run (schemas.ModelContract): a stateful model
// (the built-in user tower, a GRU) takes the user's state and new events
// and returns the new state; a sequence model (a SASRec export) takes the
// user's last H item indices, which the scorer keeps. Both run on CPU with
// ONNX Runtime; the built-in tower runs on the GPU when one is there (see
// Config.Device).
//
// Records are deterministic: a user's state after a sequence of events does
// not depend on how the events were split into batches or runs, nor on the
// other users of a run (each padding step is an exact identity, and ONNX
// Runtime's CPU kernels compute each row the same way whatever the batch
// size; TestScorerDeterminism checks it), so a replay gives byte-identical
// records on the same model, ONNX Runtime build and CPU kind (or GPU kind
// and cuBLAS version).
//
// With a models directory the model can change while the scorer runs
// (Reload, Config.ModelsDir): the new version is loaded off the hot path
// and swapped in between two batches, so each batch is scored by one
// version, which its records carry as model_version; no event is dropped or
// applied twice. The users' states are kept when the new model has the same
// contract and width (D for a stateful model, H for a sequence one);
// otherwise every user restarts cold (their clock, input position and
// bought items are kept). Bought items and histories are carried over by
// item id when the item lists differ.
//
// A Scorer is safe for use by one goroutine at a time (Score serialises);
// Stats and the counters may be read from any goroutine.
type Scorer struct {
	cfg        Config
	log        *zap.Logger
	rt         *onnxruntime.Runtime
	gpu        *cuda.Device          // nil on CPU
	ranker     newRanker             // makes a model's GPU ranker; nil on CPU
	registry   *models.ModelRegistry // nil with model_dir
	eng        atomic.Pointer[engine]
	store      *state.Store
	retr       *retrievalStage // nil unless Config.Recommender is retrieval
	halfLifeMs float64
	idleMs     int64 // IdleExpiry in ms; 0 = never

	mu      sync.Mutex
	b       batchScratch
	recs    *schemas.RecommendationBuilder
	clockMs int64 // newest event time seen, the clock of idle expiry
	closed  bool

	reload reloadState

	users     atomic.Int64
	evictions atomic.Uint64
	expiries  atomic.Uint64
	skipped   atomic.Uint64
	swaps     atomic.Uint64
	refusals  atomic.Uint64
}

// NewScorer opens the ONNX Runtime (and the GPU, per cfg.Device), loads
// the model (cfg.ModelDir, or the version CURRENT names in cfg.ModelsDir),
// checks it against its contract and readies it. With a models directory
// it starts watching CURRENT. cfg is completed with WithDefaults.
func NewScorer(cfg Config, log *zap.Logger) (*Scorer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scorer config: %w", err)
	}
	rt, err := onnxruntime.OpenRuntime(cfg.LibraryPath, log)
	if err != nil {
		return nil, fmt.Errorf("new scorer: %w", err)
	}
	s := &Scorer{cfg: cfg, log: log, rt: rt}
	if err := s.start(); err != nil {
		if s.gpu != nil {
			s.gpu.Close()
		}
		rt.Close()
		return nil, fmt.Errorf("new scorer: %w", err)
	}
	return s, nil
}

func (s *Scorer) start() error {
	cfg := s.cfg
	var err error
	if s.gpu, s.ranker, err = openDevice(cfg, s.log); err != nil {
		return err
	}
	dir, name := cfg.ModelDir, cfg.ModelDir
	if cfg.ModelsDir != "" {
		s.registry = models.NewModelRegistry(cfg.ModelsDir)
		if name, err = s.registry.Current(); err != nil {
			return fmt.Errorf("models_dir: %w", err)
		}
		if dir, err = s.registry.VersionDir(name); err != nil {
			return fmt.Errorf("models_dir: %w", err)
		}
	}
	e, err := s.loadEngine(context.Background(), dir, name)
	if err != nil {
		return err
	}
	dim, histLen := e.storeLayout()
	if s.store, err = state.New(dim, histLen, e.exclude, cfg.MaxUsers); err != nil {
		e.close()
		return err
	}
	if cfg.Recommender == RecommenderRetrieval {
		if s.retr, err = newRetrievalStage(cfg); err != nil {
			e.close()
			return err
		}
	}
	s.eng.Store(e)
	s.reload.target = name
	s.halfLifeMs = float64(cfg.DecayHalfLife.Milliseconds())
	s.idleMs = cfg.IdleExpiry.Milliseconds()
	s.clockMs = state.NoTimestamp
	s.b.index = make(map[string]int32)
	s.recs = schemas.NewRecommendationBuilder(nil)
	s.log.Info("scorer ready",
		zap.String("recommender", cfg.Recommender),
		zap.String("model", name),
		zap.String("model_version", e.version),
		zap.String("contract", string(e.contract)),
		zap.String("device", e.device),
		zap.Int("items", len(e.model.Items)),
		zap.Int("width", e.width), zap.Int("steps", e.steps), zap.Int("top_k", e.topK),
		zap.Int("max_exclude", e.exclude), zap.Int("batch_users", e.batch),
		zap.Bool("fixed_batch", e.fixedBatch))
	if s.registry != nil && cfg.ReloadInterval > 0 {
		s.startWatching(cfg.ReloadInterval)
	}
	return nil
}

func sameTypeWeights(meta models.ModelMetadata, types []string, weights []float32) bool {
	if len(meta.EventTypes) != len(meta.TypeWeights) || len(meta.EventTypes) == 0 {
		return false
	}
	for code, name := range types {
		i := slices.Index(meta.EventTypes, name)
		if i < 0 || meta.TypeWeights[i] != weights[code+1] {
			return false
		}
	}
	return true
}

func weightsHash(types []string, weights []float32) string {
	h := sha256.New()
	for code, name := range types {
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(weights[code+1])))
	}
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// ScorerStats are the scorer's counters, for metrics.
type ScorerStats struct {
	// Recommender is what fills the records: RecommenderModel or
	// RecommenderRetrieval.
	Recommender string
	// RetrievalItems is the items the retrieval stage knows, summed over
	// partitions (each partition has its own index); RetrievalDropped the
	// events it could not learn because an index was full (max_items).
	RetrievalItems   int
	RetrievalDropped int64
	// ModelVersion is the model_version of the records the next batch gets
	// (the version serving now).
	ModelVersion string
	// Device is where the serving model runs: "cpu" or "cuda".
	Device string
	// Users is the number of users whose state is kept.
	Users int
	// Evictions counts the users evicted to respect max_users.
	Evictions uint64
	// Expiries counts the users forgotten for being idle longer than
	// idle_expiry (dropped from the store, or restarted cold on return).
	Expiries uint64
	// Skipped counts the events not applied because the user's state
	// already reflected them (a replay after a restore).
	Skipped uint64
	// ModelSwaps counts the model versions swapped in since start.
	ModelSwaps uint64
	// ModelRefusals counts the versions refused (failed to load or check).
	ModelRefusals uint64
}

// Stats returns the counters as of the last Score.
func (s *Scorer) Stats() ScorerStats {
	st := ScorerStats{
		Recommender:   s.cfg.Recommender,
		ModelVersion:  s.ModelVersion(),
		Device:        s.Device(),
		Users:         s.Users(),
		Evictions:     s.evictions.Load(),
		Expiries:      s.expiries.Load(),
		Skipped:       s.skipped.Load(),
		ModelSwaps:    s.swaps.Load(),
		ModelRefusals: s.refusals.Load(),
	}
	if s.retr != nil {
		st.RetrievalItems, st.RetrievalDropped = s.retr.stats()
	}
	return st
}

// ModelVersion is the model_version the records of the next batch carry:
// the serving model's, or with the retrieval recommender
// "retrieval-<hash of its configuration>".
func (s *Scorer) ModelVersion() string {
	if s.retr != nil {
		return s.retr.version
	}
	return s.eng.Load().version
}

// Device is where the serving model runs: DeviceCPU or DeviceCUDA (always
// DeviceCPU with the retrieval recommender, which runs no model).
func (s *Scorer) Device() string {
	if s.retr != nil {
		return DeviceCPU
	}
	return s.eng.Load().device
}

// Model returns the serving model. Its ONNX bytes are released once the
// model is loaded (Model.ONNX is nil).
func (s *Scorer) Model() *models.Model { return s.eng.Load().model }

// Users is the number of users whose state is kept, as of the last Score.
func (s *Scorer) Users() int { return int(s.users.Load()) }

// Evictions counts the users evicted from the state store to respect
// MaxUsers.
func (s *Scorer) Evictions() uint64 { return s.evictions.Load() }

// Expiries counts the users forgotten for being idle longer than
// IdleExpiry.
func (s *Scorer) Expiries() uint64 { return s.expiries.Load() }

// Skipped counts the events not applied because the user's state already
// reflected them (same partition, offset at or before the user's last
// applied offset): the replay of a batch after a restore.
func (s *Scorer) Skipped() uint64 { return s.skipped.Load() }

// Store returns the state store, for checkpoints. It must not be used while
// Score runs. A model swap reshapes it in place (see Scorer).
func (s *Scorer) Store() *state.Store { return s.store }

// CaptureExtras returns the state a checkpoint keeps beside the store's:
// with the retrieval recommender, one file per input partition (its item
// index, vocabulary and users' windows); nil otherwise. Like Store, it must
// not be called while Score runs.
func (s *Scorer) CaptureExtras() (map[string][]byte, error) {
	if s.retr == nil {
		return nil, nil
	}
	return s.retr.capture(s.store)
}

// RestoreExtras puts back what CaptureExtras returned, after the store was
// restored (users it does not hold are skipped). Files of a recommender
// not serving now are ignored, as are missing ones: the retrieval stage
// then starts empty and learns again from the input.
func (s *Scorer) RestoreExtras(extras map[string][]byte) error {
	if s.retr == nil {
		return nil
	}
	if err := s.retr.restore(extras, s.store); err != nil {
		return fmt.Errorf("restore retrieval state: %w", err)
	}
	return nil
}

// Close stops watching the models directory and releases the model, the
// GPU and the runtime handle.
func (s *Scorer) Close() error {
	s.stopWatching()
	s.reload.mu.Lock() // waits for a Reload in progress
	defer s.reload.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if p := s.takePending(); p != nil {
		errs = append(errs, p.close())
	}
	errs = append(errs, s.eng.Load().close())
	s.recs.Release()
	if s.gpu != nil {
		errs = append(errs, s.gpu.Close())
	}
	errs = append(errs, s.rt.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close scorer: %w", err)
	}
	return nil
}

// Score applies the events of batch to their users' states and returns one
// recommendation per user who had an event applied, in the order the users
// first appear in the batch. Each user is refreshed once per batch, however
// many events they have in it. A model version waiting to be swapped in
// (see Reload) is swapped in first: the whole batch is scored by one
// version.
//
// A user's events are applied in input order: each first decays the state
// by 2^(-dt/half_life), dt being the time since the newest event applied
// before (0 if the event is older), then adds weight(type) times the item's
// embedding; a sequence model's user instead gets the item appended to
// their history. An item the model does not know, or a type of weight 0,
// only advances the user's clock and version. Events of an ExcludeTypes
// type add their item to the user's exclude list. Events at or before the
// user's last applied offset (same partition) are skipped: they are
// already in the state (a replay after a restore); a user with only such
// events gets no record.
//
// Errors: a cancelled ctx, or a failed model run, fail the whole batch and
// leave every known user's state as it was (a user seen for the first time
// may remain stored with a cold state, and making room for them may have
// evicted or expired others). A batch with more distinct users than
// max_users is refused. Every error is fatal to the batch: retrying it is
// safe.
func (s *Scorer) Score(ctx context.Context, batch *schemas.EventBatch) (*schemas.RecommendationBatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("score batch: scorer is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("score batch: %w", err)
	}
	if next := s.takePending(); next != nil {
		s.adopt(next)
	}
	e := s.eng.Load()
	rec := batch.Events
	n := int(rec.NumRows())
	if n == 0 {
		return &schemas.RecommendationBatch{Recs: s.recs.NewRecord()}, nil
	}
	rows := schemas.Rows(rec)
	b := &s.b
	defer clear(b.index) // its keys point into the batch's memory

	if err := s.group(rows, n); err != nil {
		return nil, err
	}
	s.resolveSlots(rows)
	s.prepareEvents(e, rows)
	if len(b.active) == 0 {
		return &schemas.RecommendationBatch{Recs: s.recs.NewRecord()}, nil
	}
	var err error
	switch {
	case s.retr != nil:
		if err = s.retr.run(s, rows, s.cfg.TopK); err != nil {
			return nil, fmt.Errorf("score batch: %w", err)
		}
		s.commit(false)
		return &schemas.RecommendationBatch{Recs: s.buildRetrievalRecords(rows)}, nil
	case e.gpu != nil:
		err = s.runGPU(ctx, e)
	case e.contract == schemas.ModelContractSequence:
		err = s.runSequence(ctx, e)
	default:
		err = s.runRounds(ctx, e)
	}
	if err != nil {
		return nil, err
	}
	s.commit(true)
	return &schemas.RecommendationBatch{Recs: s.buildRecords(e, rows)}, nil
}
