-- The database that holds recstream's tables (config: clickhouse.database,
-- default "recstream"). Applied at every start-up; IF NOT EXISTS makes that a
-- no-op once it exists. No ENGINE clause: the server's default (Ordinary on
-- 18.x, Atomic on modern servers) is right for both.
CREATE DATABASE IF NOT EXISTS {{.Database}}
