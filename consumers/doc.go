// Package consumers reads the clickstream topic. Consumer (group_reader.go)
// joins the consumer group, fetches each assigned partition in bulk,
// decodes and validates every event (schemas.EventDecoder) and hands the
// pipeline micro-batches (schemas.EventBatch) built by a Batcher
// (batcher.go): valid events as an Arrow record, rejected records as dead
// letters, and the offsets to commit once every sink has acknowledged the
// batch. DeadLetterWriter (dead_letter_writer.go) writes the rejected
// records to the dead-letter topic; EnsureTopic (topics.go) creates topics.
//
// The producer contract the decoder enforces is schemas/EVENTS.md.
package consumers
