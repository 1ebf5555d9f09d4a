package benchmark

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/models"
)

// rawSession is one ONNX Runtime session over the benchmark's model with
// tensors for runs of b users: no Go-side work at all, the ceiling of the
// scorer.
type rawSession struct {
	b       int
	sess    *ort.DynamicAdvancedSession
	inputs  []ort.Value
	outputs []ort.Value
}

// newRawSession creates a session like the scorer's (inter-op parallelism
// off, ONNX Runtime's default intra-op threads), with its threads spinning
// while they wait for work when spin is set (ONNX Runtime's default; the
// scorer turns it off). Every user has one event, the rest of its L steps
// padding: the streaming case.
func newRawSession(model *models.Model, b int, spin bool, seed uint64) (*rawSession, error) {
	var in, out []string
	for _, t := range schemas.ModelInputs() {
		in = append(in, t.Name)
	}
	for _, t := range schemas.ModelOutputs() {
		out = append(out, t.Name)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("set inter-op threads: %w", err)
	}
	flag := "0"
	if spin {
		flag = "1"
	}
	for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := opts.AddSessionConfigEntry(key, flag); err != nil {
			return nil, fmt.Errorf("set %s: %w", key, err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model.ONNX, in, out, opts)
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	s := &rawSession{b: b, sess: sess}

	d, l, k := model.Dim, max(model.Steps, 1), max(model.TopK, 1)
	m := model.Exclude
	if m <= 0 {
		m = scorers.DefaultMaxExclude
	}
	if model.Steps <= 0 {
		l = models.DefaultSteps
	}
	if model.TopK <= 0 {
		k = models.DefaultTopK
	}
	n := len(model.Items)
	rng := rand.New(rand.NewPCG(seed, uint64(b)))
	state := make([]float32, b*d)
	for i := range state {
		state[i] = float32(rng.NormFloat64() * 0.1)
	}
	items, types := make([]int64, b*l), make([]int64, b*l)
	decays := make([]float32, b*l)
	for i := range decays {
		decays[i] = 1
	}
	for u := range b {
		items[u*l] = int64(1 + rng.IntN(n))
		types[u*l] = 1
	}
	exclude := make([]int64, b*m)
	bb := int64(b)
	var errs []error
	add := func(dst *[]ort.Value) func(ort.Value, error) {
		return func(v ort.Value, err error) {
			if err != nil {
				errs = append(errs, err)
				return
			}
			*dst = append(*dst, v)
		}
	}
	addIn, addOut := add(&s.inputs), add(&s.outputs)
	addIn(ort.NewTensor(ort.NewShape(bb, int64(d)), state))
	addIn(ort.NewTensor(ort.NewShape(bb, int64(l)), items))
	addIn(ort.NewTensor(ort.NewShape(bb, int64(l)), types))
	addIn(ort.NewTensor(ort.NewShape(bb, int64(l)), decays))
	addIn(ort.NewTensor(ort.NewShape(bb, int64(m)), exclude))
	addOut(ort.NewEmptyTensor[float32](ort.NewShape(bb, int64(d))))
	addOut(ort.NewEmptyTensor[float32](ort.NewShape(bb, int64(k))))
	addOut(ort.NewEmptyTensor[int64](ort.NewShape(bb, int64(k))))
	if err := errors.Join(errs...); err != nil {
		s.close()
		return nil, fmt.Errorf("tensors for %d users: %w", b, err)
	}
	return s, nil
}

// runFor runs the session at least 5 times and for at least d, and returns
// the users scored per second.
func (s *rawSession) runFor(d time.Duration) (float64, error) {
	// One warm-up run: the first run of a session allocates its arenas.
	if err := s.sess.Run(s.inputs, s.outputs); err != nil {
		return 0, fmt.Errorf("run session (%d users): %w", s.b, err)
	}
	start := time.Now()
	runs := 0
	for runs < 5 || time.Since(start) < d {
		if err := s.sess.Run(s.inputs, s.outputs); err != nil {
			return 0, fmt.Errorf("run session (%d users): %w", s.b, err)
		}
		runs++
	}
	return float64(runs*s.b) / time.Since(start).Seconds(), nil
}

func (s *rawSession) close() {
	for _, v := range append(s.inputs, s.outputs...) {
		v.Destroy()
	}
	if s.sess != nil {
		s.sess.Destroy()
	}
}

// sessionContenders opens a raw session for every configured batch size,
// with spinning threads and without, and returns them as contenders (the
// first batch size's are the scorer's ceiling) with a function that closes
// them.
func (r *run) sessionContenders(model *models.Model) ([]contender, func(), error) {
	var sessions []*rawSession
	closeAll := func() {
		for _, s := range sessions {
			s.close()
		}
	}
	var cs []contender
	for _, b := range r.cfg.SessionBatches {
		for _, spin := range []bool{false, true} {
			threads, id := "threads sleep", fmt.Sprintf("score.ort.b%d", b)
			if spin {
				threads, id = "threads spin", id+".spin"
			}
			s, err := newRawSession(model, b, spin, r.cfg.Seed)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			sessions = append(sessions, s)
			cs = append(cs, contender{
				row: Row{ID: id, Stage: StageScore, Name: fmt.Sprintf("raw ONNX Runtime session.Run, B=%d, %s", b, threads),
					Unit: "refreshes/s", Ceiling: b == r.cfg.SessionBatches[0],
					Note: fmt.Sprintf("%d items, D=%d, L=%d, top-%d, one event per user", len(model.Items), model.Dim,
						max(model.Steps, 1), max(model.TopK, 1))},
				run: func(context.Context, int) (float64, coreUse, error) {
					u := r.startUsage()
					v, err := s.runFor(r.cfg.RunTime)
					return v, u.read(), err
				},
			})
		}
	}
	return cs, closeAll, nil
}
