-- recommendations: the newest top-K recommendation of each user, one row per
-- refresh. See ../legacy/recommendations.sql for the semantics (version,
-- ReplacingMergeTree, FINAL); they are the same here.
--
-- Variant: modern, for servers 20.1 and newer: millisecond DateTime64 times
-- and LowCardinality for the few distinct model versions. Column names are the
-- legacy variant's, so queries work on both; event_ts_ms is kept though
-- event_ts already has milliseconds.
CREATE TABLE IF NOT EXISTS {{.Database}}.recommendations
(
    user_id       String                  COMMENT 'the user the recommendation is for (also the Kafka key of the output topic)',
    items         Array(String)           COMMENT 'top-K item ids, best first',
    scores        Array(Float32)          COMMENT 'model scores of items, same order and length',
    model_version LowCardinality(String)  COMMENT 'name and version of the model that scored the user',
    version       UInt64                  COMMENT 'grows per user: input offset of the newest event applied; the newest row wins',
    event_ts      DateTime64(3, 'UTC')    COMMENT 'event time of the newest event applied',
    event_ts_ms   Int64                   COMMENT 'event_ts in Unix milliseconds',
    produced_at   DateTime64(3, 'UTC')    COMMENT 'log time of the newest input record applied (from the input log, not the wall clock, so replays are identical)',
    src_partition Int32                   COMMENT 'input topic partition the record reflects',
    src_offset    Int64                   COMMENT 'input offset of the newest event applied in src_partition'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id
