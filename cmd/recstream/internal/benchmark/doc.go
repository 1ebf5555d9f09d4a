// Package benchmark measures every stage of recstream against its ceiling,
// side by side, in one run on one data set.
//
// The data set is generated once (internal/generator) and produced once to
// an in-process Kafka broker with a data directory, as the demo does. Each
// stage is then measured against the fastest raw way of doing its job:
//
//   - ceilings: raw produce and consume of the input topic with no decoding
//     (kafka-go Writer, group Reader and Conn.ReadBatch; franz-go producer
//     and group consumer; the best of each is the ceiling), a raw ONNX
//     Runtime session.Run on the scorer's shapes, a raw clickhouse-go insert
//     of the rows the ClickHouse sink writes, and a raw produce of the
//     records the Kafka output sink writes;
//   - stages: the consumer (decode and Arrow batching), the scorer (and a
//     plain Go loop for reference), the ClickHouse and Kafka output sinks,
//     and the whole pipeline: its maximum throughput on a pre-filled topic
//     and its event-to-recommendation latency under live load at 50% and
//     100% of that maximum;
//   - resources: bytes of scorer state per user and the process's peak
//     resident memory per stage.
//
// Every figure is the median of Config.Repeats runs with the minimum and
// maximum beside it. Run returns a Report, which renders as Markdown
// (WriteMarkdown), JSON (WriteJSON) and a picture (WritePlot), and carries
// the project's performance goals with PASS or MISS and, for a miss, what
// limits the stage.
//
// The whole pipeline is built by the caller (cmd/recstream wires it), passed
// in as a PipelineFactory, so that the benchmark measures exactly what
// `recstream run` runs.
package benchmark
