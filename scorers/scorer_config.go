package scorers

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers/models"
	"github.com/recstream/recstream/scorers/retrieval"
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
	// Recommender chooses what fills the records: "retrieval" (the
	// default), the streaming two-stage recommender (scorers/retrieval),
	// which learns item-to-item relations from the input itself and runs
	// no model: each record is ranked from about a hundred candidates
	// (co-visits of the user's recent items, what followed their newest,
	// trending and popular items), so an item new in one batch can be
	// recommended from the next, and its cost does not grow with the
	// catalogue. Or "model": the model's recommendations over its whole
	// catalogue (the user tower, a GRU or a sequence model). With
	// retrieval the model is still loaded (model_dir or models_dir must
	// name one) but not run, the users' model states stay as they were,
	// and records carry model_version "retrieval-<hash of the retrieval
	// configuration and type weights>". TopK (default 20) is then free of
	// the model's K. On MovieLens 100K held out (README, Quality) retrieval
	// scores HR@10 0.195, the trained models 0.126.
	Recommender string `yaml:"recommender"`
	// Retrieval configures the retrieval recommender; its zero value is
	// the defaults tuned on public data (see retrieval.Config).
	Retrieval retrieval.Config `yaml:"retrieval"`
	// EventTypes is the configured event type list whose indices are the
	// type codes in event batches (the consumer's list). The wiring sets
	// it; nil means schemas.DefaultEventTypes().
	EventTypes []string `yaml:"-"`

	// allowSpinning lets ONNX Runtime's threads spin (benchmarks compare).
	allowSpinning bool
	// rankerForTest stands in for the GPU (tests of the GPU path).
	rankerForTest newRanker
}

// Recommenders (Config.Recommender).
const (
	RecommenderModel     = "model"
	RecommenderRetrieval = "retrieval"
)

// Defaults of Config.
const (
	// DefaultRetrievalTopK is TopK with the retrieval recommender.
	DefaultRetrievalTopK = 20
	DefaultMaxExclude    = 32
	DefaultMaxUsers      = 1_000_000
	DefaultBatchUsers    = 256
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
	if c.Recommender == "" {
		c.Recommender = RecommenderRetrieval
	}
	if c.Recommender == RecommenderRetrieval {
		c.TopK = cmp.Or(c.TopK, DefaultRetrievalTopK)
	}
	c.Retrieval = c.Retrieval.WithDefaults()
	if c.EventTypes == nil {
		c.EventTypes = schemas.DefaultEventTypes()
	}
	weights := models.DefaultTypeWeights()
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
	case c.Recommender != RecommenderModel && c.Recommender != RecommenderRetrieval:
		return fmt.Errorf("recommender: must be %s or %s, got %q", RecommenderModel, RecommenderRetrieval, c.Recommender)
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
	if c.Recommender == RecommenderRetrieval {
		if err := c.Retrieval.Validate(); err != nil {
			return fmt.Errorf("retrieval.%w", err)
		}
	}
	for _, name := range c.EventTypes {
		w, ok := c.TypeWeights[name]
		if !ok {
			return fmt.Errorf("type_weights: no weight for event type %q", name)
		}
		if err := models.CheckTypeWeight(name, w); err != nil {
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
