package main

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/recstream/recstream/consumers"
	"github.com/recstream/recstream/internal/config"
	"github.com/recstream/recstream/internal/pipeline"
	"github.com/recstream/recstream/scorers"
	"github.com/recstream/recstream/sinks"
)

// components are the parts of a running pipeline, kept so that they can be
// closed in reverse order of creation.
type components struct {
	consumer   *consumers.Consumer
	dlq        *consumers.DeadLetterWriter
	scorer     *scorers.Scorer
	clickhouse *sinks.ClickHouseSink
	output     *sinks.KafkaSink
	pipeline   *pipeline.Pipeline
}

// buildPipeline connects every component named by cfg. Sinks are checked
// before the consumer joins its group, so that a sink that cannot write
// stops start-up instead of letting offsets be committed for nothing.
func buildPipeline(ctx context.Context, cfg config.Config, log *zap.Logger) (c *components, err error) {
	c = &components{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.scorer, err = scorers.NewScorer(cfg.Scorer, log.Named("scorer")); err != nil {
		return nil, fmt.Errorf("start scorer: %w", err)
	}
	if c.clickhouse, err = sinks.NewClickHouseSink(ctx, cfg.ClickHouse, log.Named("clickhouse")); err != nil {
		return nil, fmt.Errorf("start clickhouse sink: %w", err)
	}
	if c.output, err = sinks.NewKafkaSink(ctx, cfg.Output, log.Named("output")); err != nil {
		return nil, fmt.Errorf("start kafka output sink: %w", err)
	}
	c.dlq = consumers.NewDeadLetterWriter(cfg.Input.Brokers, cfg.Input.DeadLetterTopic, log.Named("dlq"))
	if c.consumer, err = consumers.NewConsumer(cfg.Input, log.Named("consumer")); err != nil {
		return nil, fmt.Errorf("start consumer: %w", err)
	}
	c.pipeline = pipeline.New(cfg.Pipeline, c.consumer, c.scorer, c.dlq, []pipeline.NamedSink{
		{Name: "clickhouse", Sink: c.clickhouse},
		{Name: "kafka", Sink: c.output},
	}, log.Named("pipeline"))
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
