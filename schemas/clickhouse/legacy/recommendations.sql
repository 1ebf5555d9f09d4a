-- recommendations: the newest top-K recommendation of each user, one row per
-- refresh. Written by the ClickHouse sink for every RecommendationBatch; read
-- by analysts and serving look-ups.
--
-- Variant: legacy, for servers older than 20.1 (18.16 has no DateTime64,
-- LowCardinality needs an experimental setting, no TTL or CODEC). The modern
-- variant (../modern/recommendations.sql) has the same column names, so
-- queries work on both.
--
-- Idempotency: a row's version only grows per user (it is the input offset of
-- the newest event applied; the input is keyed by user_id, so one user's
-- events are ordered in one partition). A replay or a retry rewrites rows
-- with the same version and identical content; ReplacingMergeTree(version)
-- keeps one row per user_id, the one with the highest version, when parts
-- merge. Until a merge, duplicates and older versions are still visible:
-- read with FINAL, or argMax(column, version) ... GROUP BY user_id:
--
--   SELECT * FROM recstream.recommendations FINAL WHERE user_id = 'u42'
--
-- The sorting key is user_id alone: replacing works on the sorting key, and a
-- user has one current recommendation, not one per version.
CREATE TABLE IF NOT EXISTS {{.Database}}.recommendations
(
    user_id       String           COMMENT 'the user the recommendation is for (also the Kafka key of the output topic)',
    items         Array(String)    COMMENT 'top-K item ids, best first',
    scores        Array(Float32)   COMMENT 'model scores of items, same order and length',
    model_version String           COMMENT 'name and version of the model that scored the user',
    version       UInt64           COMMENT 'grows per user: input offset of the newest event applied; the newest row wins',
    event_ts      DateTime('UTC')  COMMENT 'event time of the newest event applied (seconds; see event_ts_ms)',
    event_ts_ms   Int64            COMMENT 'event_ts in Unix milliseconds, exact',
    produced_at   DateTime('UTC')  COMMENT 'log time of the newest input record applied (from the input log, not the wall clock, so replays are identical)',
    src_partition Int32            COMMENT 'input topic partition the record reflects',
    src_offset    Int64            COMMENT 'input offset of the newest event applied in src_partition'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id
