// Package state holds what the scorer knows about each user, and its
// checkpoints.
//
//   - Store (state_store.go): every known user's state vector or item
//     history, bought items, clock and input position, in flat arrays the
//     scorer gathers from and scatters to once per batch;
//   - Snapshot (state_snapshot.go): a Store at a batch boundary with the
//     input offsets it reflects, encoded as Arrow IPC per partition;
//   - CheckpointStore (checkpoint_store.go): generations of snapshots on
//     disk, written atomically and checked on load.
//
// A Store is owned by one scorer and not safe for concurrent use.
package state
