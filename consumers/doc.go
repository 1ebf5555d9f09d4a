// Package consumers reads the clickstream topic. Consumer (group_reader.go)
// joins the consumer group, fetches each assigned partition in bulk,
// decodes and validates every event (schemas.EventDecoder) and hands the
// pipeline micro-batches (schemas.EventBatch) built by a Batcher
// (batcher.go): valid events as an Arrow record, rejected records as dead
// letters, and the offsets to commit once every sink has acknowledged the
// batch. The rejected records are written to the dead-letter topic by an
// output, sinks.DeadLetterSink, like every other output.
//
// The producer contract the decoder enforces is schemas/EVENTS.md.
package consumers
