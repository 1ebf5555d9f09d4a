package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/recstream/recstream/cmd/recstream/internal/config"
	"github.com/recstream/recstream/cmd/recstream/internal/kafkaauth"
	"github.com/recstream/recstream/cmd/recstream/internal/metrics"
	"github.com/recstream/recstream/cmd/recstream/internal/pipeline"
	"github.com/recstream/recstream/consumers"
	"github.com/recstream/recstream/schemas"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/scorers/state"
	"github.com/recstream/recstream/sinks"
)

// components are the parts of a running pipeline, kept so that they can be
// closed in reverse order of creation.
type components struct {
	consumer   *consumers.Consumer
	dlq        *sinks.DeadLetterSink
	scorer     *scorers.Scorer
	clickhouse *sinks.ClickHouseSink
	output     *sinks.KafkaSink
	pipeline   *pipeline.Pipeline
	// auth secures every Kafka client (nil: plaintext); kept for the lag
	// monitor.
	auth *kafkaauth.Auth
}

// buildOptions change what buildPipeline wires, for replays and rebuilds.
// The zero value is the normal run.
type buildOptions struct {
	// skipClickHouse and skipKafkaOutput leave a sink out (a replay that
	// rebuilds only the other one).
	skipClickHouse  bool
	skipKafkaOutput bool
	// discardDeadLetters drops rejected records instead of writing them to
	// the dead-letter topic: a replay re-reads records that are there already.
	discardDeadLetters bool
	// freshState ignores checkpoints: the state is rebuilt from resumeFrom
	// (or from the start of every partition when resumeFrom is nil).
	freshState bool
	resumeFrom map[int]int64
	// health, when set, reports the restore of a checkpoint to the probes.
	health *metrics.Health
}

// buildPipeline connects every component named by cfg. Sinks are checked
// before the consumer joins its group, so that a sink that cannot write
// stops start-up instead of letting offsets be committed for nothing.
func buildPipeline(ctx context.Context, cfg config.Config, log *zap.Logger) (c *components, err error) {
	return buildPipelineWith(ctx, cfg, log, buildOptions{})
}

// buildPipelineWith is buildPipeline with options.
func buildPipelineWith(ctx context.Context, cfg config.Config, log *zap.Logger, opts buildOptions) (c *components, err error) {
	c = &components{}
	// `return nil, err` clears c before deferred calls run: close what was
	// started through a copy.
	started := c
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	if c.auth, err = connectKafka(ctx, cfg, log); err != nil {
		return nil, err
	}
	// Security arrives at the stages as values: a dialer for the consumer,
	// a transport of its own for each Kafka sink, a TLS config for ClickHouse.
	cfg.Input.Dialer = c.auth.Dialer(10 * time.Second)
	cfg.Output.Transport = c.auth.Transport(5 * time.Second)
	if c.scorer, err = scorers.NewScorer(cfg.Scorer, log.Named("scorer")); err != nil {
		return nil, fmt.Errorf("start scorer: %w", err)
	}
	var outputs []pipeline.NamedSink
	if !opts.skipClickHouse {
		chCfg, err := cfg.ClickHouse.Sink()
		if err != nil {
			return nil, err
		}
		if c.clickhouse, err = sinks.NewClickHouseSink(ctx, chCfg, log.Named("clickhouse")); err != nil {
			return nil, fmt.Errorf("start clickhouse sink: %w", err)
		}
		outputs = append(outputs, pipeline.NamedSink{Name: "clickhouse", Sink: c.clickhouse})
	}
	if !opts.skipKafkaOutput {
		if c.output, err = sinks.NewKafkaSink(ctx, cfg.Output, log.Named("output")); err != nil {
			return nil, fmt.Errorf("start kafka output sink: %w", err)
		}
		outputs = append(outputs, pipeline.NamedSink{Name: "kafka", Sink: c.output})
	}
	var dlq pipeline.DeadLetterSink = discardDeadLetters{}
	if !opts.discardDeadLetters {
		// The dead-letter topic must exist before the first bad event
		// arrives; it keeps the broker's default partitions and replication.
		admin := c.auth.Transport(0)
		err = sinks.EnsureTopic(ctx, cfg.Input.Brokers, admin, sinks.TopicSpec{Name: cfg.Input.DeadLetterTopic})
		admin.CloseIdleConnections()
		if err != nil {
			return nil, fmt.Errorf("ensure dead-letter topic: %w", err)
		}
		c.dlq = sinks.NewDeadLetterSink(cfg.Input.Brokers, cfg.Input.DeadLetterTopic, c.auth.Transport(0), log.Named("dlq"))
		dlq = c.dlq
	}
	var ckpt *scorerCheckpointer
	var ckptFrom map[int32]int64 // where the restored state stands
	switch {
	case opts.freshState:
		cfg.Input.ResumeFrom = opts.resumeFrom
		if cfg.Input.ResumeFrom == nil {
			cfg.Input.ResumeFrom = map[int]int64{}
		}
	case cfg.Checkpoint.Dir != "":
		store, err := state.NewCheckpointStore(cfg.Checkpoint, log.Named("checkpoints"))
		if err != nil {
			return nil, err
		}
		if opts.health != nil {
			opts.health.SetPhase(metrics.PhaseRestoring)
		}
		cfg.Input.ResumeFrom, err = restoreCheckpoint(ctx, store, c.scorer, log.Named("checkpoints"))
		if opts.health != nil {
			opts.health.SetPhase(metrics.PhaseStarting)
		}
		if err != nil {
			return nil, err
		}
		for part, off := range cfg.Input.ResumeFrom {
			if ckptFrom == nil {
				ckptFrom = map[int32]int64{}
			}
			ckptFrom[int32(part)] = off
		}
		ckpt = &scorerCheckpointer{store: store, scorer: c.scorer, topic: cfg.Input.Topic,
			interval: cfg.Checkpoint.Interval, last: time.Now(), log: log.Named("checkpoints")}
	}
	if c.consumer, err = consumers.NewConsumer(cfg.Input, log.Named("consumer")); err != nil {
		return nil, fmt.Errorf("start consumer: %w", err)
	}
	c.pipeline = pipeline.New(cfg.Pipeline, c.consumer, c.scorer, dlq, outputs, log.Named("pipeline"))
	if ckpt != nil {
		c.pipeline.SetCheckpointer(ckpt, ckptFrom)
	}
	return c, nil
}

// Close releases every component that was started.
func (c *components) Close() error {
	var errs []error
	if c.consumer != nil {
		errs = append(errs, c.consumer.Close())
	}
	if c.dlq != nil {
		errs = append(errs, c.dlq.Close())
	}
	if c.output != nil {
		errs = append(errs, c.output.Close())
	}
	if c.clickhouse != nil {
		errs = append(errs, c.clickhouse.Close())
	}
	if c.scorer != nil {
		errs = append(errs, c.scorer.Close())
	}
	return errors.Join(errs...)
}

// discardDeadLetters drops rejected records: used by replays, which re-read
// records whose dead letters were written by the original run.
type discardDeadLetters struct{}

func (discardDeadLetters) Write(context.Context, string, []schemas.DeadLetter) error { return nil }

// connectKafka builds the TLS and SASL settings every Kafka client shares
// and checks them against the brokers, so that a wrong password or CA stops
// start-up with a message naming the setting. Brokers that cannot be
// reached at all are not an error here: the consumer and sinks wait for
// them as they always do.
func connectKafka(ctx context.Context, cfg config.Config, log *zap.Logger) (*kafkaauth.Auth, error) {
	auth, err := kafkaauth.New(cfg.Kafka.Auth())
	if err != nil {
		return nil, usageError{fmt.Errorf("kafka.%w", err)}
	}
	if auth.PlaintextSASL() {
		log.Warn("kafka.sasl is set without kafka.tls: the SASL exchange crosses the network unencrypted",
			zap.String("mechanism", cfg.Kafka.SASL.Mechanism))
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := auth.Check(checkCtx, cfg.Input.Brokers); err != nil {
		if errors.Is(err, kafkaauth.ErrRejected) {
			return nil, fmt.Errorf("connect to kafka: %w", err)
		}
		log.Warn("kafka brokers not reachable yet; the consumer and sinks keep trying", zap.Error(err))
	}
	log.Info("kafka connection", zap.Stringer("security", auth))
	return auth, nil
}
