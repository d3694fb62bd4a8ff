-- 003: when each fill was recorded, for end-to-end latency and lag in SQL.
--
-- recorded_at is the time the recorder's transaction inserted the row
-- (clock_timestamp(), evaluated per row; the commit follows within the same
-- batch). recorded_at - matched_at is the fill's end-to-end latency: from
-- ingest receiving the taker order to the fill being written to PostgreSQL.
-- Added without a default first, so existing rows are not rewritten (they
-- keep NULL); new rows get the default.
ALTER TABLE fills ADD COLUMN recorded_at timestamptz;
ALTER TABLE fills ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
