-- events: every valid input event, for analytics. See ../legacy/events.sql
-- for the semantics (idempotent rewrites, FINAL); they are the same here.
--
-- Variant: modern, for servers 20.1 and newer: millisecond DateTime64 time,
-- LowCardinality event type, and a retention TTL (config:
-- clickhouse.events_ttl_days; 0 means keep forever). The TTL is set when the
-- table is created; changing the setting later does not alter an existing
-- table (run ALTER TABLE ... MODIFY TTL by hand: it rewrites parts).
CREATE TABLE IF NOT EXISTS {{.Database}}.events
(
    event_id      String                  COMMENT 'producer''s unique id of the event',
    user_id       String                  COMMENT 'the user (Kafka key of the input topic)',
    item_id       String                  COMMENT 'the item the event is about; empty for search events',
    type          LowCardinality(String)  COMMENT 'event type: view, click, add_to_cart, purchase, search, or a configured one',
    ts            DateTime64(3, 'UTC')    COMMENT 'event time',
    ts_ms         Int64                   COMMENT 'event time in Unix milliseconds',
    session_id    String                  COMMENT 'producer''s session id; empty when absent',
    query         String                  COMMENT 'search text; empty when absent',
    price         Nullable(Float64)       COMMENT 'item price; NULL when absent',
    category      String                  COMMENT 'item category; empty when absent',
    src_partition Int32                   COMMENT 'input topic partition the event was read from',
    src_offset    Int64                   COMMENT 'input offset of the event in src_partition'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts, event_id)
{{- if gt .EventsTTLDays 0}}
TTL toDateTime(ts) + INTERVAL {{.EventsTTLDays}} DAY
{{- end}}
