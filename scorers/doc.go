// Package scorers turns a batch of events into recommendations: the middle
// stage of consumers → scorers → sinks. The pipeline needs only
// Scorer.Score.
//
// What is where:
//   - serving: Scorer (onnx_scorer.go, configured by scorer_config.go)
//     gathers the batch's users, runs the model through an engine
//     (model_engine.go, model_runs.go; ONNX Runtime in ort_runtime.go, the
//     GPU in gpu_tower.go and scorers/cuda) and builds the recommendation
//     records (the per-batch steps are in scorer_batch.go);
//     model_reloader.go swaps versions between batches;
//   - user state: StateStore (state_store.go), and its checkpoints with
//     the offsets they reflect (scorers/checkpoints);
//   - the model format: a model directory (written by model_dir_writer.go,
//     loaded and checked by model_dir.go; event-type weights in
//     event_type_weights.go), the registry of versions (model_registry.go),
//     and the ONNX graphs written from Go (onnx_model_builder.go,
//     sequence_model_builder.go);
//   - training: scorers/training, which the pipeline never imports.
//
// The model contract a model trained elsewhere must honour is
// schemas/MODEL.md.
package scorers
