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
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	ort "github.com/yalue/onnxruntime_go"
	"go.uber.org/zap"

	"github.com/recstream/recstream/schemas"
)

// Config configures a Scorer. The zero value of each field means its
// documented default.
type Config struct {
	// ModelDir is the model directory to load (see WriteModelDir). Required.
	ModelDir string `yaml:"model_dir"`
	// TopK is the number of items per recommendation record. 0 means the
	// model's K (20 for a model written with the defaults; 20 when the
	// model leaves K dynamic). It must not exceed the model's K; a smaller
	// value keeps the best TopK of them.
	TopK int `yaml:"top_k"`
	// StepsPerRound is L, the events applied per user per session run. 0
	// means the model's L (8 with the defaults; 8 when the model leaves it
	// dynamic). A model with a fixed L accepts only that value. A user with
	// more events in a batch takes extra runs.
	StepsPerRound int `yaml:"steps_per_round"`
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
	// BatchUsers is the most users scored by one session run; larger
	// batches take several runs. 0 means 256 (larger runs were slower per
	// user: their score matrix no longer fits the CPU caches), or fewer when
	// the model has so many items that one run's score matrix (users x
	// items float32) would pass 64 MiB. A model with a fixed batch dimension B uses B
	// instead (runs are padded to it).
	BatchUsers int `yaml:"batch_users"`
	// DecayHalfLife is the time after which a user's past interest counts
	// half as much as a new event. Default 24h.
	DecayHalfLife time.Duration `yaml:"decay_half_life"`
	// IntraOpThreads is the number of threads ONNX Runtime may use per
	// operator; 0 lets it choose (one per physical core).
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
	// model_version "<version>+tw<hash>".
	TypeWeights map[string]float32 `yaml:"type_weights"`
	// ExcludeTypes names the event types whose item is never recommended to
	// that user again. Default ["purchase"].
	ExcludeTypes []string `yaml:"exclude_types"`
	// EventTypes is the configured event type list whose indices are the
	// type codes in event batches (the consumer's list). The wiring sets
	// it; nil means schemas.DefaultEventTypes().
	EventTypes []string `yaml:"-"`
}

// Defaults of Config.
const (
	DefaultMaxExclude = 32
	DefaultMaxUsers   = 1_000_000
	DefaultBatchUsers = 256
	// maxScoreBytes bounds one run's score matrix when BatchUsers is 0.
	maxScoreBytes        = 64 << 20
	DefaultDecayHalfLife = 24 * time.Hour
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxExclude == 0 {
		c.MaxExclude = DefaultMaxExclude
	}
	if c.MaxUsers == 0 {
		c.MaxUsers = DefaultMaxUsers
	}
	if c.DecayHalfLife == 0 {
		c.DecayHalfLife = DefaultDecayHalfLife
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
	case c.ModelDir == "":
		return errors.New("model_dir: must be set")
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
// it applies their events to their states with the model (an ONNX Runtime
// session) and returns one recommendation record per refreshed user.
//
// Records are deterministic: a user's state after a sequence of events does
// not depend on how the events were split into batches or runs, nor on the
// other users of a run (each padding step is an exact identity, and ONNX
// Runtime's CPU kernels compute each row the same way whatever the batch
// size; TestScorerDeterminism checks it), so a replay gives byte-identical
// records on the same model, ONNX Runtime build and CPU kind.
//
// A Scorer is safe for use by one goroutine at a time (Score serialises);
// Users and Evictions may be read from any goroutine.
type Scorer struct {
	cfg          Config
	log          *zap.Logger
	rt           *Runtime
	model        *Model
	session      *ort.DynamicAdvancedSession
	store        *StateStore
	modelVersion string

	dim, steps, modelK, topK int
	exclude                  int  // most bought items kept per user
	excludeWidth             int  // M of the exclude_items input (>= exclude)
	batch                    int  // most users per run
	fixedBatch               bool // runs are padded to batch
	halfLifeMs               float64
	typeInput                []int64 // type code -> event_types value; 0 = contributes nothing
	excludeType              []bool  // type code -> its item goes to the exclude list

	mu   sync.Mutex
	b    batchScratch
	run  runBuffers
	recs *schemas.RecommendationBuilder

	users     atomic.Int64
	evictions atomic.Uint64
	skipped   atomic.Uint64
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
	partition int32
	offset    int64
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
	exclude []int32   // M per batch user: their exclude lists
	scores  []float32 // modelK per batch user: their final top-K
	items   []int64
	bought  []int32
	recIDs  []string
	recVals []float32
}

// runBuffers back the tensors of one session run of up to batch users.
type runBuffers struct {
	state   []float32
	items   []int64
	types   []int64
	decays  []float32
	exclude []int64
	newS    []float32
	scores  []float32
	topIdx  []int64
	full    []ort.Value // tensors over the whole buffers (runs of batch users)
}

// NewScorer opens the ONNX Runtime, loads cfg.ModelDir, checks it against
// the contract and creates the session. cfg is completed with WithDefaults.
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
	s, err := newScorer(rt, cfg, log)
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("new scorer: %w", err)
	}
	return s, nil
}

func newScorer(rt *Runtime, cfg Config, log *zap.Logger) (*Scorer, error) {
	model, err := LoadModelDir(cfg.ModelDir)
	if err != nil {
		return nil, err
	}
	s := &Scorer{cfg: cfg, log: log, rt: rt, model: model, dim: model.Dim}
	if err := s.resolveShapes(); err != nil {
		return nil, err
	}
	weights, err := typeWeightVector(cfg.EventTypes, cfg.TypeWeights)
	if err != nil {
		return nil, err
	}
	onnx, patched, err := replaceFloatInitializer(model.ONNX, schemas.ModelInitTypeWeights, weights)
	if err != nil {
		return nil, fmt.Errorf("set type weights in %s: %w", cfg.ModelDir, err)
	}
	s.modelVersion = model.Meta.Version
	if patched {
		if !sameTypeWeights(model.Meta, cfg.EventTypes, weights) {
			s.modelVersion += "+tw" + weightsHash(cfg.EventTypes, weights)
		}
	} else {
		log.Warn("model has no type_weights initializer: type_weights of the configuration are not applied",
			zap.String("model_dir", cfg.ModelDir))
	}
	s.typeInput = make([]int64, 256)
	s.excludeType = make([]bool, 256)
	for code, name := range cfg.EventTypes {
		if weights[code+1] > 0 {
			s.typeInput[code] = int64(code + 1)
		}
		s.excludeType[code] = slices.Contains(cfg.ExcludeTypes, name)
	}
	s.halfLifeMs = float64(cfg.DecayHalfLife.Milliseconds())

	s.store, err = NewStateStore(s.dim, s.exclude, cfg.MaxUsers)
	if err != nil {
		return nil, err
	}
	in := make([]string, 0, 5)
	for _, t := range schemas.ModelInputs() {
		in = append(in, t.Name)
	}
	out := make([]string, 0, 3)
	for _, t := range schemas.ModelOutputs() {
		out = append(out, t.Name)
	}
	s.session, err = rt.newSession(onnx, in, out, sessionOptions{IntraOpThreads: cfg.IntraOpThreads})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", cfg.ModelDir, err)
	}
	// The session holds its own copy; the bytes can be large (N x D floats).
	model.ONNX = nil
	s.allocRun()
	if s.run.full, err = s.tensors(s.batch); err != nil {
		s.session.Destroy()
		return nil, err
	}
	s.b.index = make(map[string]int32)
	s.recs = schemas.NewRecommendationBuilder(nil)
	log.Info("scorer ready",
		zap.String("model_dir", cfg.ModelDir),
		zap.String("model_version", s.modelVersion),
		zap.Int("items", len(model.Items)),
		zap.Int("dim", s.dim), zap.Int("steps", s.steps), zap.Int("top_k", s.topK),
		zap.Int("max_exclude", s.exclude), zap.Int("batch_users", s.batch),
		zap.Bool("fixed_batch", s.fixedBatch))
	return s, nil
}

// resolveShapes settles L, M, K and the batch size between the
// configuration and the model's fixed dimensions.
func (s *Scorer) resolveShapes() error {
	cfg, m := s.cfg, s.model
	switch {
	case m.Steps > 0 && cfg.StepsPerRound != 0 && cfg.StepsPerRound != m.Steps:
		return fmt.Errorf("steps_per_round: %d, but the model has a fixed L=%d", cfg.StepsPerRound, m.Steps)
	case m.Steps > 0:
		s.steps = m.Steps
	default:
		s.steps = cmpOr(cfg.StepsPerRound, DefaultSteps)
	}
	s.exclude, s.excludeWidth = cfg.MaxExclude, cfg.MaxExclude
	if m.Exclude > 0 {
		// A fixed M bounds the list; shorter lists are padded to it.
		s.exclude, s.excludeWidth = min(cfg.MaxExclude, m.Exclude), m.Exclude
	}
	s.modelK = m.TopK
	if s.modelK <= 0 {
		// A dynamic K is only known after a run; size the buffers for the
		// configured K and check the run's output shape.
		s.modelK = cmpOr(cfg.TopK, DefaultTopK)
	}
	if cfg.TopK > s.modelK {
		return fmt.Errorf("top_k: %d, but the model returns K=%d", cfg.TopK, s.modelK)
	}
	s.topK = cmpOr(cfg.TopK, s.modelK)
	s.batch = cfg.BatchUsers
	if s.batch == 0 {
		s.batch = min(DefaultBatchUsers, max(1, maxScoreBytes/(4*(len(m.Items)+1))))
	}
	if m.Batch > 0 {
		s.batch, s.fixedBatch = m.Batch, true
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

func (s *Scorer) allocRun() {
	b, d, l, m, k := s.batch, s.dim, s.steps, s.excludeWidth, s.modelK
	s.run = runBuffers{
		state:   make([]float32, b*d),
		items:   make([]int64, b*l),
		types:   make([]int64, b*l),
		decays:  make([]float32, b*l),
		exclude: make([]int64, b*m),
		newS:    make([]float32, b*d),
		scores:  make([]float32, b*k),
		topIdx:  make([]int64, b*k),
	}
}

// tensors returns the inputs then outputs of a run of b users, over the
// run buffers.
func (s *Scorer) tensors(b int) (vals []ort.Value, err error) {
	r := &s.run
	bb := int64(b)
	l, d, m, k := int64(s.steps), int64(s.dim), int64(s.excludeWidth), int64(s.modelK)
	vals = make([]ort.Value, 0, 8)
	add := func(v ort.Value, e error) {
		if e != nil {
			err = errors.Join(err, e)
			return
		}
		vals = append(vals, v)
	}
	add(ort.NewTensor(ort.NewShape(bb, d), r.state))
	add(ort.NewTensor(ort.NewShape(bb, l), r.items))
	add(ort.NewTensor(ort.NewShape(bb, l), r.types))
	add(ort.NewTensor(ort.NewShape(bb, l), r.decays))
	add(ort.NewTensor(ort.NewShape(bb, m), r.exclude))
	add(ort.NewTensor(ort.NewShape(bb, d), r.newS))
	add(ort.NewTensor(ort.NewShape(bb, k), r.scores))
	add(ort.NewTensor(ort.NewShape(bb, k), r.topIdx))
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

// ModelVersion is the model_version the records carry.
func (s *Scorer) ModelVersion() string { return s.modelVersion }

// Model returns the loaded model. Its ONNX bytes are released once the
// session is made (Model.ONNX is nil).
func (s *Scorer) Model() *Model { return s.model }

// Users is the number of users whose state is kept, as of the last Score.
func (s *Scorer) Users() int { return int(s.users.Load()) }

// Evictions counts the users evicted from the state store to respect
// MaxUsers.
func (s *Scorer) Evictions() uint64 { return s.evictions.Load() }

// Skipped counts the events not applied because the user's state already
// reflected them (same partition, offset at or before the user's last
// applied offset): the replay of a batch after a restore.
func (s *Scorer) Skipped() uint64 { return s.skipped.Load() }

// Store returns the state store, for checkpoints. It must not be used while
// Score runs.
func (s *Scorer) Store() *StateStore { return s.store }

// Close releases the session and the runtime handle.
func (s *Scorer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == nil {
		return nil
	}
	destroyAll(s.run.full)
	s.run.full = nil
	err := s.session.Destroy()
	s.session = nil
	s.recs.Release()
	if e := s.rt.Close(); err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("close scorer: %w", err)
	}
	return nil
}

// Score applies the events of batch to their users' states and returns one
// recommendation per user who had an event applied, in the order the users
// first appear in the batch. Each user is refreshed once per batch, however
// many events they have in it.
//
// A user's events are applied in input order: each first decays the state
// by 2^(-dt/half_life), dt being the time since the newest event applied
// before (0 if the event is older), then adds weight(type) times the item's
// embedding. An item the model does not know, or a type of weight 0, only
// advances the user's clock and version. Events of an ExcludeTypes type add
// their item to the user's exclude list. Events at or before the user's
// last applied offset (same partition) are skipped: they are already in the
// state (a replay after a restore); a user with only such events gets no
// record.
//
// Errors: a cancelled ctx, or a failed session run, fail the whole batch and
// leave every known user's state as it was (a user seen for the first time
// may remain stored with a cold state, and making room for them may have
// evicted others). A batch with more distinct users than max_users is
// refused. Every error is fatal to the batch: retrying it is safe.
func (s *Scorer) Score(ctx context.Context, batch *schemas.EventBatch) (*schemas.RecommendationBatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == nil {
		return nil, errors.New("score batch: scorer is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("score batch: %w", err)
	}
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
	s.prepareEvents(rows)
	if len(b.active) == 0 {
		return &schemas.RecommendationBatch{Recs: s.recs.NewRecord()}, nil
	}
	if err := s.runRounds(ctx); err != nil {
		return nil, err
	}
	s.commit()
	return &schemas.RecommendationBatch{Recs: s.buildRecords(rows)}, nil
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
// users only after every known one was touched, so that the eviction that
// makes room never takes a user of this batch.
func (s *Scorer) resolveSlots(rows schemas.EventRows) {
	b := &s.b
	b.slots = b.slots[:0]
	for i := range b.users {
		bu := &b.users[i]
		bu.slot = s.store.lookup(rows.UserID.Value(int(bu.firstRow)))
		if bu.slot != noSlot {
			s.store.touch(bu.slot)
		}
	}
	for i := range b.users {
		bu := &b.users[i]
		if bu.slot == noSlot {
			bu.slot = s.store.insert(rows.UserID.Value(int(bu.firstRow)))
		}
		b.slots = append(b.slots, bu.slot)
	}
	s.evictions.Store(s.store.Evictions())
	s.users.Store(int64(s.store.Len()))
}

// prepareEvents turns each user's rows into model inputs (item index, type
// input, decay) and works out the user's new clock, position and exclude
// list, without touching the store yet.
func (s *Scorer) prepareEvents(rows schemas.EventRows) {
	b := &s.b
	nUsers := len(b.users)
	b.evItem = b.evItem[:0]
	b.evType = b.evType[:0]
	b.evDecay = b.evDecay[:0]
	b.active = b.active[:0]
	b.exclude = slices.Grow(b.exclude[:0], nUsers*s.exclude)[:nUsers*s.exclude]
	var skipped uint64
	for u := range b.users {
		bu := &b.users[u]
		meta := s.store.meta[bu.slot]
		bu.evStart = int32(len(b.evItem))
		bu.newestTs, bu.partition, bu.offset = meta.newestTsMs, meta.partition, meta.offset
		b.bought = s.store.appendBought(b.bought[:0], bu.slot)
		for _, row := range b.order[bu.rowStart : bu.rowStart+bu.nRows] {
			i := int(row)
			part, off := rows.Partition.Value(i), rows.Offset.Value(i)
			if bu.offset >= 0 && part == bu.partition && off <= bu.offset {
				skipped++
				continue
			}
			ts := int64(rows.Ts.Value(i))
			decay := float32(1)
			if bu.newestTs != noTs && ts > bu.newestTs {
				decay = decayFactor(ts-bu.newestTs, s.halfLifeMs)
			}
			bu.newestTs = max(bu.newestTs, ts)
			code := rows.Type.Value(i)
			item := int64(s.model.ItemIndex(rows.ItemID.Value(i)))
			typ := s.typeInput[code]
			if item == 0 || typ == 0 {
				// Contributes exactly +0: see UserTowerGraph.
				item, typ = 0, 0
			}
			b.evItem = append(b.evItem, item)
			b.evType = append(b.evType, typ)
			b.evDecay = append(b.evDecay, decay)
			if s.excludeType[code] && item != 0 && !slices.Contains(b.bought, int32(item)) {
				b.bought = append(b.bought, int32(item))
			}
			bu.partition, bu.offset, bu.logTs = part, off, int64(rows.LogTs.Value(i))
		}
		bu.evCount = int32(len(b.evItem)) - bu.evStart
		if len(b.bought) > s.exclude {
			b.bought = b.bought[len(b.bought)-s.exclude:]
		}
		bu.nExclude = int32(copy(b.exclude[u*s.exclude:(u+1)*s.exclude], b.bought))
		if bu.evCount > 0 {
			b.active = append(b.active, int32(u))
		}
	}
	if skipped > 0 {
		s.skipped.Add(skipped)
	}
}

// runRounds applies every active user's events, L per run: round r runs
// the users with more than r*L events, in chunks of at most batch users. A
// user's top-K is the one of their last round (their state is unchanged by
// later padding).
func (s *Scorer) runRounds(ctx context.Context) error {
	b := &s.b
	nUsers := len(b.users)
	b.work = slices.Grow(b.work[:0], nUsers*s.dim)[:nUsers*s.dim]
	b.scores = slices.Grow(b.scores[:0], nUsers*s.modelK)[:nUsers*s.modelK]
	b.items = slices.Grow(b.items[:0], nUsers*s.modelK)[:nUsers*s.modelK]
	s.store.gather(b.slots, b.work)
	for round := 0; ; round++ {
		b.runList = b.runList[:0]
		for _, u := range b.active {
			if int(b.users[u].evCount) > round*s.steps {
				b.runList = append(b.runList, u)
			}
		}
		if len(b.runList) == 0 {
			return nil
		}
		for start := 0; start < len(b.runList); start += s.batch {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("score batch: %w", err)
			}
			chunk := b.runList[start:min(start+s.batch, len(b.runList))]
			if err := s.runChunk(chunk, round); err != nil {
				return fmt.Errorf("score batch: round %d, %d users: %w", round, len(chunk), err)
			}
		}
	}
}

// runChunk runs the session once for the users of chunk, on their events of
// the given round.
func (s *Scorer) runChunk(chunk []int32, round int) error {
	b, r := &s.b, &s.run
	d, l, m, k := s.dim, s.steps, s.excludeWidth, s.modelK
	n := len(chunk)
	rowsRun := n
	if s.fixedBatch {
		rowsRun = s.batch
	}
	for i, u := range chunk {
		bu := &b.users[u]
		copy(r.state[i*d:(i+1)*d], b.work[int(u)*d:(int(u)+1)*d])
		from := int(bu.evStart) + round*l
		cnt := min(l, int(bu.evCount)-round*l)
		copy(r.items[i*l:], b.evItem[from:from+cnt])
		copy(r.types[i*l:], b.evType[from:from+cnt])
		copy(r.decays[i*l:], b.evDecay[from:from+cnt])
		padEvents(r, i*l+cnt, (i+1)*l)
		ex := r.exclude[i*m : (i+1)*m]
		for j, item := range b.exclude[int(u)*s.exclude : int(u)*s.exclude+int(bu.nExclude)] {
			ex[j] = int64(item)
		}
		clear(ex[bu.nExclude:])
	}
	if rowsRun > n {
		clear(r.state[n*d : rowsRun*d])
		padEvents(r, n*l, rowsRun*l)
		clear(r.exclude[n*m : rowsRun*m])
	}

	vals := r.full
	if rowsRun != s.batch {
		var err error
		if vals, err = s.tensors(rowsRun); err != nil {
			return err
		}
		defer destroyAll(vals)
	}
	if err := s.session.Run(vals[:5], vals[5:]); err != nil {
		return fmt.Errorf("run model %s: %w", s.modelVersion, err)
	}

	for i, u := range chunk {
		bu := &b.users[u]
		copy(b.work[int(u)*d:(int(u)+1)*d], r.newS[i*d:(i+1)*d])
		if int(bu.evCount) <= (round+1)*l { // the user's last round
			copy(b.scores[int(u)*k:(int(u)+1)*k], r.scores[i*k:(i+1)*k])
			copy(b.items[int(u)*k:(int(u)+1)*k], r.topIdx[i*k:(i+1)*k])
		}
	}
	return nil
}

// padEvents fills event positions [from, to) with padding: item 0, type 0,
// decay exactly 1.
func padEvents(r *runBuffers, from, to int) {
	clear(r.items[from:to])
	clear(r.types[from:to])
	for j := from; j < to; j++ {
		r.decays[j] = 1
	}
}

// commit writes the batch's new states, clocks, positions and exclude lists
// into the store, once every run has succeeded.
func (s *Scorer) commit() {
	b := &s.b
	// Users without applied events got their own state back unchanged.
	s.store.scatter(b.slots, b.work)
	for _, u := range b.active {
		bu := &b.users[u]
		m := &s.store.meta[bu.slot]
		m.newestTsMs, m.partition, m.offset = bu.newestTs, bu.partition, bu.offset
		s.store.setBought(bu.slot, b.exclude[int(u)*s.exclude:int(u)*s.exclude+int(bu.nExclude)])
	}
}

// buildRecords returns one record per active user, first-seen order.
func (s *Scorer) buildRecords(rows schemas.EventRows) arrow.RecordBatch {
	b := &s.b
	k := s.modelK
	for _, u := range b.active {
		bu := &b.users[u]
		b.recIDs = b.recIDs[:0]
		b.recVals = b.recVals[:0]
		for j := range k {
			score := b.scores[int(u)*k+j]
			id := s.model.ItemID(b.items[int(u)*k+j])
			if score <= schemas.ModelMaskedScore || id == "" || len(b.recIDs) == s.topK {
				continue
			}
			b.recIDs = append(b.recIDs, id)
			b.recVals = append(b.recVals, score)
		}
		r := schemas.Recommendation{
			UserID:       rows.UserID.Value(int(bu.firstRow)),
			Items:        b.recIDs,
			Scores:       b.recVals,
			ModelVersion: s.modelVersion,
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
