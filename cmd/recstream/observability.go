package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/metrics"
)

// observability is the operations side of a running pipeline: the probes'
// state, the metrics registry, the HTTP endpoint and the lag monitor.
// Health exists even when the endpoint is disabled, so the wiring can
// always report its phase.
type observability struct {
	cfg     config.MetricsConfig
	log     *zap.Logger
	health  *metrics.Health
	metrics *metrics.Metrics // nil when metrics.listen is empty
	server  *metrics.Server  // nil when metrics.listen is empty
	lag     *kgo.Client      // the lag monitor's client; nil until attach
	stop    context.CancelFunc
}

// startObservability starts the endpoint when cfg.Listen is set, before
// the pipeline is built, so that probes answer (not ready) during a long
// start-up or checkpoint restore.
func startObservability(cfg config.MetricsConfig, log *zap.Logger) (*observability, error) {
	o := &observability{cfg: cfg.WithDefaults(), log: log, health: metrics.NewHealth(), stop: func() {}}
	if cfg.Listen == "" {
		return o, nil
	}
	o.metrics = metrics.New(o.health)
	srv, err := metrics.NewServer(cfg.Listen, o.metrics, o.health, log.Named("metrics"))
	if err != nil {
		return nil, usageError{err}
	}
	o.server = srv
	go srv.Serve()
	return o, nil
}

// buildObservedPipeline starts the endpoint, builds the pipeline with the
// probes following its start-up, and attaches the metrics to it: what run
// and demo share. On success the caller closes both, the pipeline first.
func buildObservedPipeline(ctx context.Context, cfg config.Config, log *zap.Logger) (*observability, *components, error) {
	obs, err := startObservability(cfg.Metrics, log)
	if err != nil {
		return nil, nil, err
	}
	c, err := buildPipelineWith(ctx, cfg, log, buildOptions{health: obs.health})
	if err != nil {
		obs.Close()
		return nil, nil, err
	}
	if err := obs.attach(c, cfg); err != nil {
		c.Close()
		obs.Close()
		return nil, nil, err
	}
	return obs, c, nil
}

// addr is the endpoint's address, "" when disabled.
func (o *observability) addr() string {
	if o.server == nil {
		return ""
	}
	return o.server.Addr()
}

// attach points the metrics and probes at the built pipeline and starts
// the lag monitor. Call before the pipeline runs.
func (o *observability) attach(c *components, cfg config.Config) error {
	sinkNames := []string{}
	if c.clickhouse != nil {
		sinkNames = append(sinkNames, "clickhouse")
	}
	if c.output != nil {
		sinkNames = append(sinkNames, "kafka")
	}
	src := metrics.Sources{
		Pipeline:           c.pipeline.Stats(),
		SinkNames:          sinkNames,
		Consumer:           c.consumer,
		CheckpointsEnabled: cfg.Checkpoint.Dir != "",
		Scorer: func() metrics.ScorerStats {
			s := c.scorer.Stats()
			return metrics.ScorerStats{ModelVersion: s.ModelVersion, Device: s.Device, Users: s.Users,
				Evictions: s.Evictions, Expiries: s.Expiries, Skipped: s.Skipped,
				ModelSwaps: s.ModelSwaps, ModelRefusals: s.ModelRefusals}
		},
	}
	o.health.WatchPipeline(src, o.cfg.StallTimeout)
	if o.metrics == nil {
		return nil
	}
	cl, err := kgo.NewClient(append(c.auth.KgoOptions(), kgo.SeedBrokers(cfg.Input.Brokers...))...)
	if err != nil {
		return fmt.Errorf("start lag monitor client: %w", err)
	}
	o.lag = cl
	src.Lag = metrics.NewLagMonitor(cl, cfg.Input.Topic, o.cfg.LagInterval, o.log.Named("lag"))
	ctx, cancel := context.WithCancel(context.Background())
	o.stop = cancel
	go src.Lag.Run(ctx)
	c.pipeline.SetObserver(o.metrics)
	o.metrics.Attach(src)
	return nil
}

// runPipeline runs c's pipeline with the probes following it: ready while
// it runs, stopping once ctx ends (the drain), stopped when Run returns.
func (o *observability) runPipeline(ctx context.Context, c *components) error {
	o.health.SetPhase(metrics.PhaseRunning)
	defer context.AfterFunc(ctx, func() { o.health.SetPhase(metrics.PhaseStopping) })()
	err := c.pipeline.Run(ctx)
	o.health.SetPhase(metrics.PhaseStopped)
	return err
}

// Close stops the lag monitor and the endpoint.
func (o *observability) Close() {
	o.stop()
	if o.lag != nil {
		o.lag.Close()
	}
	if o.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := o.server.Close(ctx); err != nil {
			o.log.Warn("stop operations endpoint", zap.Error(err))
		}
	}
}
