package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Server is the operations HTTP server:
//
//	/metrics  Prometheus text (or protobuf) exposition of the private registry
//	/healthz  liveness: 200 "ok" while the process loop is alive, else 503 with the reasons
//	/readyz   readiness: 200 "ready" while the pipeline does its work, else 503 with the reasons
//
// Probe bodies are plain text, one reason per line, so that `curl` and a
// Kubernetes event both read well.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *zap.Logger
}

// NewServer listens on addr (host:port; port 0 picks a free one, see Addr)
// now, so that a taken port fails start-up, and serves once Serve is
// called. health nil answers both probes with 200. log nil means no
// logging.
func NewServer(addr string, m *Metrics, health *Health, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          zap.NewStdLog(log),
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})))
	mux.HandleFunc("GET /healthz", probe(health, (*Health).Live, "ok"))
	mux.HandleFunc("GET /readyz", probe(health, (*Health).Ready, "ready"))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "recstream operations endpoint\n\n/metrics  Prometheus metrics\n/healthz  liveness\n/readyz   readiness\n")
	})
	return &Server{
		ln:  ln,
		log: log,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
		},
	}, nil
}

func probe(h *Health, fn func(*Health) (bool, []string), okBody string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if h == nil {
			fmt.Fprintln(w, okBody)
			return
		}
		ok, reasons := fn(h)
		if ok {
			fmt.Fprintln(w, okBody)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(reasons, "\n"))
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Close; run it on its own goroutine.
func (s *Server) Serve() {
	s.log.Info("operations endpoint listening", zap.String("addr", s.Addr()),
		zap.Strings("paths", []string{"/metrics", "/healthz", "/readyz"}))
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("operations endpoint stopped", zap.Error(err))
	}
}

// Close stops the server, letting requests in flight finish until ctx
// ends.
func (s *Server) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop operations endpoint: %w", err)
	}
	return nil
}
