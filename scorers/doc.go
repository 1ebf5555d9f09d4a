// Package scorers turns a batch of events into recommendations: the middle
// stage of consumers → scorers → sinks. The pipeline needs only
// Scorer.Score.
//
// What is where:
//   - serving, this package: Scorer (onnx_scorer.go, configured by
//     scorer_config.go) gathers the batch's users and builds their
//     recommendation records (the per-batch steps are in scorer_batch.go)
//     with one of two recommenders: retrieval, the default
//     (retrieval_stage.go, its checkpoint files in retrieval_snapshot.go),
//     or the model, run through an engine (model_engine.go, model_runs.go;
//     the GPU in gpu_tower.go and scorers/cuda); model_reloader.go swaps
//     model versions between batches;
//   - scorers/retrieval: the streaming item index, the candidate sources,
//     the merger and the ranker the retrieval recommender is made of;
//   - scorers/state: the per-user state store and its checkpoints with the
//     offsets they reflect;
//   - scorers/models: the model directory format, the registry of versions
//     and the ONNX graphs written from Go;
//   - scorers/onnxruntime: the ONNX Runtime library and its sessions;
//   - scorers/training: the trainers, which the pipeline never imports;
//   - scorers/internal/scorertest: what the tests of all of these share.
//
// The model contract a model trained elsewhere must honour is
// schemas/MODEL.md.
package scorers
