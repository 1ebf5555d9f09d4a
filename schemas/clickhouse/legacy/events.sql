-- events: every valid input event, as the pipeline applied it, for analytics
-- (funnels, item popularity, replays by time). Dead-lettered records are not
-- here; they are in the dead-letter topic with their reason.
--
-- Variant: legacy, for servers older than 20.1 (see recommendations.sql). No
-- retention: 18.16 has no TTL, so old months are dropped by the operator:
--   ALTER TABLE recstream.events DROP PARTITION 202601
--
-- Idempotency: a replay or a retry writes exactly the same rows again (every
-- column comes from the input record). ReplacingMergeTree without a version
-- column keeps one of the identical rows per sorting key (user_id, ts,
-- event_id) when parts merge; read with FINAL for exact counts before that.
-- A producer's retry of the same event (same event_id, same ts) collapses the
-- same way.
--
-- Partitioned by month of the event time, so retention drops whole parts and
-- time-range queries skip months.
CREATE TABLE IF NOT EXISTS {{.Database}}.events
(
    event_id      String             COMMENT 'producer''s unique id of the event',
    user_id       String             COMMENT 'the user (Kafka key of the input topic)',
    item_id       String             COMMENT 'the item the event is about; empty for search events',
    type          String             COMMENT 'event type: view, click, add_to_cart, purchase, search, or a configured one',
    ts            DateTime('UTC')    COMMENT 'event time (seconds; see ts_ms)',
    ts_ms         Int64              COMMENT 'event time in Unix milliseconds, exact',
    session_id    String             COMMENT 'producer''s session id; empty when absent',
    query         String             COMMENT 'search text; empty when absent',
    price         Nullable(Float64)  COMMENT 'item price; NULL when absent',
    category      String             COMMENT 'item category; empty when absent',
    src_partition Int32              COMMENT 'input topic partition the event was read from',
    src_offset    Int64              COMMENT 'input offset of the event in src_partition'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts, event_id)
