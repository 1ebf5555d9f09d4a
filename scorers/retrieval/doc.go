// Package retrieval is the first stage of the two-stage scorer: it learns
// item-to-item relations from the stream and proposes a few hundred
// candidates per user for a ranker to order.
//
//   - Index (item_index.go): co-visitation, transitions, popularity and
//     trend, updated by every visit, bounded and decayed, deterministic;
//     index_snapshot.go encodes it for checkpoints;
//   - Window (user_window.go): a user's last distinct items, the user state
//     the index and the sources read;
//   - sources, one per file: CovisitSource (neighbours of the user's last
//     items), TransitionSource (what followed the newest item),
//     PopularSource and TrendingSource (the cold-start fallbacks);
//   - Merger (candidate_merger.go): sources merged per user, with limits,
//     provenance and exclusion before ranking;
//   - BlendRanker (blend_ranker.go): the ranker without a model;
//     Retriever (retriever.go): merger and ranker together.
//
// Item indices are the caller's dense vocabulary. Nothing here is safe for
// concurrent use.
package retrieval
