package scorers

import (
	"cmp"
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
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/cuda"
)

// Config configures a Scorer. The zero value of each field means its
// documented default.
type Config struct {
	// ModelDir is the one model directory to serve for the scorer's
	// lifetime (see WriteModelDir). Exactly one of ModelDir and ModelsDir
	// must be set.
	ModelDir string `yaml:"model_dir"`
	// ModelsDir is a model registry (see ModelRegistry): versioned model
	// directories plus a CURRENT file naming the one to serve. The scorer
	// serves CURRENT's version from the start, watches CURRENT (every
	// ReloadInterval, and on Reload) and swaps a new version in between
	// two batches once it has loaded and passed every check; a version
	// that fails them is refused and logged, and the old one keeps
	// serving. Exactly one of ModelDir and ModelsDir must be set.
	ModelsDir string `yaml:"models_dir"`
	// ReloadInterval is how often CURRENT of models_dir is read. 0 means
	// 5s; a negative value turns polling off (Reload still works).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Device is where the model runs: "cuda" (the GPU; start-up fails if
	// none can be used), "cpu" (ONNX Runtime on CPU), or "auto", the
	// default: the GPU when one can be used, else the CPU, with a log line
	// saying why. Only the built-in user tower runs on the GPU (no CUDA
	// build of ONNX Runtime is used); any other model runs on CPU under
	// auto and is refused under cuda.
	Device string `yaml:"device"`
	// CUDALibraryDir is the directory holding libcublas and libnvrtc.
	// Empty means the loader's path, then $RECSTREAM_CUDA_LIB_DIR,
	// $CUDA_HOME, /usr/local/cuda and the nvidia-* Python wheels.
	CUDALibraryDir string `yaml:"cuda_library_dir"`
	// TopK is the number of items per recommendation record. 0 means the
	// model's K (20 for a model written with the defaults; 20 when the
	// model leaves K dynamic). It must not exceed the model's K; a smaller
	// value keeps the best TopK of them.
	TopK int `yaml:"top_k"`
	// StepsPerRound is L, the events applied per user per session run of a
	// stateful model. 0 means the model's L (8 with the defaults; 8 when
	// the model leaves it dynamic). A model with a fixed L accepts only
	// that value. A user with more events in a batch takes extra runs.
	StepsPerRound int `yaml:"steps_per_round"`
	// HistoryLen is H, the items of history a sequence model sees per
	// user: the store keeps each user's last H item indices. 0 means the
	// model's H, or 50 when the model leaves it dynamic. A model with a
	// fixed H accepts only that value.
	HistoryLen int `yaml:"history_len"`
	// MaxExclude is the most bought items kept per user and masked out of
	// their recommendations (the oldest are forgotten first): M of the
	// exclude_items input. Default 32. A model with a fixed M keeps at most
	// M.
	MaxExclude int `yaml:"max_exclude"`
	// MaxUsers bounds the users whose state is kept in memory; beyond it the
	// user idle longest is evicted (and starts cold if they come back).
	// Default 1,000,000 (about 550 MB with D=64). It must be at least the
	// number of users in one batch. Which user is evicted depends on batch
	// boundaries, so a replay reproduces records byte for byte only if no
	// user was evicted: size it so that eviction is an exception.
	MaxUsers int `yaml:"max_users"`
	// IdleExpiry forgets users whose newest event is more than this older
	// than the clock: the newest event time seen in any batch so far (event
	// time, never the wall clock, so a replay expires the same users). A
	// user whose next event comes more than IdleExpiry after their
	// previous one restarts from a cold state (state, history and bought
	// items cleared) whether or not they were dropped yet, so records do
	// not depend on when the drop happened. 0, the default, never expires
	// anyone. Set it well above the decoder's max_future_skew.
	IdleExpiry time.Duration `yaml:"idle_expiry"`
	// BatchUsers is the most users scored by one session run; larger
	// batches take several runs. 0 means 256 on CPU (larger runs were
	// slower per user: their score matrix no longer fits the CPU caches),
	// or fewer when the model has so many items that one run's score
	// matrix (users x items float32) would pass 64 MiB; on the GPU 4096,
	// or fewer when the score matrix would pass 1 GiB. A model with a
	// fixed batch dimension B uses B instead on CPU (runs are padded to
	// it).
	BatchUsers int `yaml:"batch_users"`
	// DecayHalfLife is the time after which a user's past interest counts
	// half as much as a new event. Default 24h.
	DecayHalfLife time.Duration `yaml:"decay_half_life"`
	// IntraOpThreads is the number of threads ONNX Runtime may use per
	// operator; 0 lets it choose (one per physical core). The threads
	// sleep rather than spin while they wait for work, so that they leave
	// the CPU to the sinks and the broker between runs.
	IntraOpThreads int `yaml:"intra_op_threads"`
	// LibraryPath is the ONNX Runtime shared library; empty means
	// $ONNXRUNTIME_LIB, else .deps/onnxruntime/libonnxruntime.so found from
	// the working directory (make setup puts it there).
	LibraryPath string `yaml:"library_path"`
	// TypeWeights overrides the weight of event types by name; types not
	// named keep DefaultTypeWeights (view 1, click 2, add_to_cart 4,
	// purchase 8, search 0.5). A weight is 0 (the type moves nothing but
	// the user's clock and version) or in [1e-6, 1e6]. When the weights
	// differ from those the model was built with, records carry
	// model_version "<version>+tw<hash>". A sequence model's history takes
	// the items of events whose type has a weight above 0.
	TypeWeights map[string]float32 `yaml:"type_weights"`
	// ExcludeTypes names the event types whose item is never recommended to
	// that user again. Default ["purchase"].
	ExcludeTypes []string `yaml:"exclude_types"`
	// EventTypes is the configured event type list whose indices are the
	// type codes in event batches (the consumer's list). The wiring sets
	// it; nil means schemas.DefaultEventTypes().
	EventTypes []string `yaml:"-"`

	// allowSpinning lets ONNX Runtime's threads spin (benchmarks compare).
	allowSpinning bool
	// rankerForTest stands in for the GPU (tests of the GPU path).
	rankerForTest newRanker
}

// Defaults of Config.
const (
	DefaultMaxExclude = 32
	DefaultMaxUsers   = 1_000_000
	DefaultBatchUsers = 256
	// maxScoreBytes bounds one run's score matrix when BatchUsers is 0.
	maxScoreBytes         = 64 << 20
	DefaultDecayHalfLife  = 24 * time.Hour
	DefaultReloadInterval = 5 * time.Second
	// maxHistoryLen is the longest history a store keeps per user.
	maxHistoryLen = math.MaxUint16
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.MaxExclude = cmp.Or(c.MaxExclude, DefaultMaxExclude)
	c.MaxUsers = cmp.Or(c.MaxUsers, DefaultMaxUsers)
	c.DecayHalfLife = cmp.Or(c.DecayHalfLife, DefaultDecayHalfLife)
	c.ReloadInterval = cmp.Or(c.ReloadInterval, DefaultReloadInterval)
	if c.Device == "" {
		c.Device = DeviceAuto
	}
	if c.EventTypes == nil {
		c.EventTypes = schemas.DefaultEventTypes()
	}
	weights := DefaultTypeWeights()
	for name, w := range c.TypeWeights {
		weights[name] = w
	}
	c.TypeWeights = weights
	if c.ExcludeTypes == nil {
		c.ExcludeTypes = []string{"purchase"}
	}
	return c
}

// Validate checks c (after WithDefaults); errors name the YAML field.
func (c Config) Validate() error {
	switch {
	case c.ModelDir == "" && c.ModelsDir == "":
		return errors.New("model_dir: must be set, or models_dir (exactly one of them)")
	case c.ModelDir != "" && c.ModelsDir != "":
		return fmt.Errorf("model_dir: %q and models_dir %q are both set; set exactly one of them", c.ModelDir, c.ModelsDir)
	case c.ReloadInterval > 0 && c.ReloadInterval < 10*time.Millisecond:
		return fmt.Errorf("reload_interval: must be >= 10ms, or negative to turn polling off, got %s", c.ReloadInterval)
	case c.Device != DeviceAuto && c.Device != DeviceCPU && c.Device != DeviceCUDA:
		return fmt.Errorf("device: must be auto, cpu or cuda, got %q", c.Device)
	case c.HistoryLen < 0 || c.HistoryLen > maxHistoryLen:
		return fmt.Errorf("history_len: must be in [0, %d], got %d", maxHistoryLen, c.HistoryLen)
	case c.IdleExpiry < 0:
		return fmt.Errorf("idle_expiry: must be >= 0 (0 = never), got %s", c.IdleExpiry)
	case c.TopK < 0:
		return fmt.Errorf("top_k: must be >= 0, got %d", c.TopK)
	case c.StepsPerRound < 0:
		return fmt.Errorf("steps_per_round: must be >= 0, got %d", c.StepsPerRound)
	case c.MaxExclude <= 0 || c.MaxExclude > math.MaxUint16:
		return fmt.Errorf("max_exclude: must be in [1, %d], got %d", math.MaxUint16, c.MaxExclude)
	case c.MaxUsers <= 0 || c.MaxUsers > math.MaxInt32:
		return fmt.Errorf("max_users: must be in [1, %d], got %d", math.MaxInt32, c.MaxUsers)
	case c.BatchUsers < 0:
		return fmt.Errorf("batch_users: must be >= 0, got %d", c.BatchUsers)
	case c.DecayHalfLife < time.Millisecond:
		return fmt.Errorf("decay_half_life: must be >= 1ms, got %s", c.DecayHalfLife)
	case c.IntraOpThreads < 0:
		return fmt.Errorf("intra_op_threads: must be >= 0, got %d", c.IntraOpThreads)
	case len(c.EventTypes) == 0 || len(c.EventTypes) > math.MaxUint8+1:
		return fmt.Errorf("event_types: need 1 to %d types, got %d", math.MaxUint8+1, len(c.EventTypes))
	}
	for _, name := range c.EventTypes {
		w, ok := c.TypeWeights[name]
		if !ok {
			return fmt.Errorf("type_weights: no weight for event type %q", name)
		}
		if err := checkTypeWeight(name, w); err != nil {
			return err
		}
	}
	for _, name := range c.ExcludeTypes {
		if !slices.Contains(c.EventTypes, name) {
			return fmt.Errorf("exclude_types: %q is not an event type (%v)", name, c.EventTypes)
		}
	}
	return nil
}

// Scorer refreshes the recommendations of the users of each event batch:
// it applies their events to their states with the model and returns one
// recommendation record per refreshed user.
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
	rt         *Runtime
	gpu        *cuda.Device   // nil on CPU
	ranker     newRanker      // makes a model's GPU ranker; nil on CPU
	registry   *ModelRegistry // nil with model_dir
	eng        atomic.Pointer[engine]
	store      *StateStore
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

// batchUser is one user of the batch being scored.
type batchUser struct {
	firstRow  int32 // a row of the user, to read the id from
	nRows     int32
	rowStart  int32 // range of the user's rows in batchScratch.order
	slot      int32
	evStart   int32 // range of the user's applied events in the ev* arrays
	evCount   int32
	newestTs  int64
	logTs     int64 // log time of the newest applied event
	nExclude  int32
	nHist     int32
	partition int32
	offset    int64
	cold      bool // restarts from a cold state (idle longer than idle_expiry)
}

// batchScratch is reused from batch to batch so that scoring allocates
// little once warm.
type batchScratch struct {
	index   map[string]int32 // user id -> batch user
	users   []batchUser
	rowUser []int32
	order   []int32 // rows grouped by user, in input order within a user
	active  []int32 // batch users with events to apply, first-seen order
	runList []int32
	slots   []int32 // store slot of each batch user
	evItem  []int64
	evType  []int64
	evDecay []float32
	work    []float32 // D per batch user: states while they are updated
	hist    []int32   // H per batch user: sequence histories, oldest first
	exclude []int32   // M per batch user: their exclude lists
	scores  []float32 // modelK per batch user: their final top-K
	items   []int64
	bought  []int32
	histTmp []int32
	recIDs  []string
	recVals []float32
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
	rt, err := OpenRuntime(cfg.LibraryPath, log)
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
		s.registry = NewModelRegistry(cfg.ModelsDir)
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
	if s.store, err = newStore(dim, histLen, e.exclude, cfg.MaxUsers); err != nil {
		e.close()
		return err
	}
	s.eng.Store(e)
	s.reload.target = name
	s.halfLifeMs = float64(cfg.DecayHalfLife.Milliseconds())
	s.idleMs = cfg.IdleExpiry.Milliseconds()
	s.clockMs = noTs
	s.b.index = make(map[string]int32)
	s.recs = schemas.NewRecommendationBuilder(nil)
	s.log.Info("scorer ready",
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

func sameTypeWeights(meta ModelMetadata, types []string, weights []float32) bool {
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
	e := s.eng.Load()
	return ScorerStats{
		ModelVersion:  e.version,
		Device:        e.device,
		Users:         s.Users(),
		Evictions:     s.evictions.Load(),
		Expiries:      s.expiries.Load(),
		Skipped:       s.skipped.Load(),
		ModelSwaps:    s.swaps.Load(),
		ModelRefusals: s.refusals.Load(),
	}
}

// ModelVersion is the model_version the records of the next batch carry.
func (s *Scorer) ModelVersion() string { return s.eng.Load().version }

// Device is where the serving model runs: DeviceCPU or DeviceCUDA.
func (s *Scorer) Device() string { return s.eng.Load().device }

// Model returns the serving model. Its ONNX bytes are released once the
// model is loaded (Model.ONNX is nil).
func (s *Scorer) Model() *Model { return s.eng.Load().model }

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
func (s *Scorer) Store() *StateStore { return s.store }

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
	s.commit()
	return &schemas.RecommendationBatch{Recs: s.buildRecords(e, rows)}, nil
}

// group assigns each row to its batch user (first-seen order) and lists the
// rows of each user together, keeping their input order.
func (s *Scorer) group(rows schemas.EventRows, n int) error {
	b := &s.b
	b.users = b.users[:0]
	b.rowUser = slices.Grow(b.rowUser[:0], n)[:n]
	for i := range n {
		id := rows.UserID.Value(i)
		u, ok := b.index[id]
		if !ok {
			u = int32(len(b.users))
			b.index[id] = u
			b.users = append(b.users, batchUser{firstRow: int32(i)})
		}
		b.rowUser[i] = u
		b.users[u].nRows++
	}
	if len(b.users) > s.store.MaxUsers() {
		return fmt.Errorf("score batch: %d distinct users exceed max_users %d", len(b.users), s.store.MaxUsers())
	}
	var start int32
	for i := range b.users {
		b.users[i].rowStart = start
		start += b.users[i].nRows
		b.users[i].nRows = 0
	}
	b.order = slices.Grow(b.order[:0], n)[:n]
	for i, u := range b.rowUser {
		bu := &b.users[u]
		b.order[bu.rowStart+bu.nRows] = int32(i)
		bu.nRows++
	}
	return nil
}

// resolveSlots finds each batch user's slot in the store, inserting new
// users only after every known one was touched and idle users expired, so
// that neither the eviction that makes room nor the expiry takes a user of
// this batch.
func (s *Scorer) resolveSlots(rows schemas.EventRows) {
	b := &s.b
	b.slots = b.slots[:0]
	known := 0
	for i := range b.users {
		bu := &b.users[i]
		bu.slot = s.store.lookup(rows.UserID.Value(int(bu.firstRow)))
		if bu.slot != noSlot {
			s.store.touch(bu.slot)
			known++
		}
	}
	if s.idleMs > 0 {
		for i := range int(rows.Ts.Len()) {
			s.clockMs = max(s.clockMs, int64(rows.Ts.Value(i)))
		}
		s.store.Expire(s.clockMs-s.idleMs, known)
	}
	for i := range b.users {
		bu := &b.users[i]
		if bu.slot == noSlot {
			bu.slot = s.store.insert(rows.UserID.Value(int(bu.firstRow)))
		}
		b.slots = append(b.slots, bu.slot)
	}
	s.evictions.Store(s.store.Evictions())
	s.expiries.Store(s.store.Expiries())
	s.users.Store(int64(s.store.Len()))
}

// prepareEvents turns each user's rows into model inputs (item index, type
// input, decay; a sequence model's history) and works out the user's new
// clock, position and exclude list, without touching the store yet.
func (s *Scorer) prepareEvents(e *engine, rows schemas.EventRows) {
	b := &s.b
	nUsers := len(b.users)
	histLen := s.store.HistoryLen()
	b.evItem = b.evItem[:0]
	b.evType = b.evType[:0]
	b.evDecay = b.evDecay[:0]
	b.active = b.active[:0]
	b.exclude = slices.Grow(b.exclude[:0], nUsers*e.exclude)[:nUsers*e.exclude]
	b.hist = slices.Grow(b.hist[:0], nUsers*histLen)[:nUsers*histLen]
	var skipped uint64
	for u := range b.users {
		bu := &b.users[u]
		meta := s.store.meta[bu.slot]
		bu.evStart = int32(len(b.evItem))
		bu.newestTs, bu.partition, bu.offset = meta.newestTsMs, meta.partition, meta.offset
		bu.cold = false
		b.bought = s.store.appendBought(b.bought[:0], bu.slot)
		if histLen > 0 {
			b.histTmp = s.store.appendHistory(b.histTmp[:0], bu.slot)
		}
		for _, row := range b.order[bu.rowStart : bu.rowStart+bu.nRows] {
			i := int(row)
			part, off := rows.Partition.Value(i), rows.Offset.Value(i)
			if bu.offset >= 0 && part == bu.partition && off <= bu.offset {
				skipped++
				continue
			}
			ts := int64(rows.Ts.Value(i))
			if s.idleMs > 0 && bu.newestTs != noTs && ts-bu.newestTs > s.idleMs {
				// Idle longer than idle_expiry: forget everything, as if
				// the user had been dropped (see Config.IdleExpiry).
				bu.cold, bu.newestTs = true, noTs
				b.evItem, b.evType, b.evDecay = b.evItem[:bu.evStart], b.evType[:bu.evStart], b.evDecay[:bu.evStart]
				b.bought, b.histTmp = b.bought[:0], b.histTmp[:0]
			}
			decay := float32(1)
			if bu.newestTs != noTs && ts > bu.newestTs {
				decay = decayFactor(ts-bu.newestTs, s.halfLifeMs)
			}
			bu.newestTs = max(bu.newestTs, ts)
			code := rows.Type.Value(i)
			item := int64(e.model.ItemIndex(rows.ItemID.Value(i)))
			typ := e.typeInput[code]
			if item == 0 || typ == 0 {
				// Contributes exactly +0: see UserTowerGraph.
				item, typ = 0, 0
			}
			b.evItem = append(b.evItem, item)
			b.evType = append(b.evType, typ)
			b.evDecay = append(b.evDecay, decay)
			if histLen > 0 && item != 0 {
				b.histTmp = append(b.histTmp, int32(item))
			}
			if e.excludeType[code] && item != 0 && !slices.Contains(b.bought, int32(item)) {
				b.bought = append(b.bought, int32(item))
			}
			bu.partition, bu.offset, bu.logTs = part, off, int64(rows.LogTs.Value(i))
		}
		bu.evCount = int32(len(b.evItem)) - bu.evStart
		if len(b.bought) > e.exclude {
			b.bought = b.bought[len(b.bought)-e.exclude:]
		}
		bu.nExclude = int32(copy(b.exclude[u*e.exclude:(u+1)*e.exclude], b.bought))
		if histLen > 0 {
			h := b.histTmp[max(0, len(b.histTmp)-histLen):]
			bu.nHist = int32(copy(b.hist[u*histLen:(u+1)*histLen], h))
		}
		if bu.evCount > 0 {
			b.active = append(b.active, int32(u))
		}
	}
	if skipped > 0 {
		s.skipped.Add(skipped)
	}
}

// commit writes the batch's new states, histories, clocks, positions and
// exclude lists into the store, once every run has succeeded.
func (s *Scorer) commit() {
	b := &s.b
	exclude, histLen := s.store.MaxExclude(), s.store.HistoryLen()
	// Users without applied events got their own state back unchanged.
	s.store.scatter(b.slots, b.work)
	var cold uint64
	for _, u := range b.active {
		bu := &b.users[u]
		m := &s.store.meta[bu.slot]
		m.newestTsMs, m.partition, m.offset = bu.newestTs, bu.partition, bu.offset
		s.store.setBought(bu.slot, b.exclude[int(u)*exclude:int(u)*exclude+int(bu.nExclude)])
		if histLen > 0 {
			s.store.setHistory(bu.slot, b.hist[int(u)*histLen:int(u)*histLen+int(bu.nHist)])
		}
		if bu.cold {
			cold++
		}
	}
	if cold > 0 {
		s.store.expiries += cold
		s.expiries.Store(s.store.Expiries())
	}
}

// buildRecords returns one record per active user, first-seen order.
func (s *Scorer) buildRecords(e *engine, rows schemas.EventRows) arrow.RecordBatch {
	b := &s.b
	k := e.modelK
	for _, u := range b.active {
		bu := &b.users[u]
		b.recIDs = b.recIDs[:0]
		b.recVals = b.recVals[:0]
		var bought []int32
		if e.filterExclude {
			bought = b.exclude[int(u)*e.exclude : int(u)*e.exclude+int(bu.nExclude)]
		}
		for j := range k {
			score := b.scores[int(u)*k+j]
			idx := b.items[int(u)*k+j]
			id := e.model.ItemID(idx)
			if score <= schemas.ModelMaskedScore || id == "" || len(b.recIDs) == e.topK ||
				(bought != nil && slices.Contains(bought, int32(idx))) {
				continue
			}
			b.recIDs = append(b.recIDs, id)
			b.recVals = append(b.recVals, score)
		}
		r := schemas.Recommendation{
			UserID:       rows.UserID.Value(int(bu.firstRow)),
			Items:        b.recIDs,
			Scores:       b.recVals,
			ModelVersion: e.version,
			Version:      uint64(bu.offset),
			EventTsMs:    bu.newestTs,
			ProducedAtMs: bu.logTs,
			Partition:    bu.partition,
			Offset:       bu.offset,
		}
		s.recs.Append(&r)
	}
	return s.recs.NewRecord()
}
