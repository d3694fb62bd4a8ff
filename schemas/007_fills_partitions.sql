-- 007: fills partitioned by day (UTC) of matched_at, so that old days can be detached and dropped or archived.
--
-- Applied by orderpipe-setup in its own transaction. Append-only, like 001.
--
-- Retention is the reason: a fills table that only grows has to be emptied
-- by DELETE (every row through WAL, indexes bloated, VACUUM after), while a
-- day that is its own partition leaves in one catalog change (DETACH, then
-- DROP or a dump first: ops/partitions.sh, docs/recorder.md "Partitions and
-- retention").
--
-- What this migration does, in its one transaction, keeping every row where
-- it is (no copy of the data):
--   1. the existing table becomes the partition fills_legacy, with its
--      indexes renamed fills_legacy_…; its primary key becomes
--      (fill_id, matched_at) (a unique index built here, or reused when an
--      operator built it beforehand: see below);
--   2. a new `fills` PARTITION BY RANGE (matched_at), with the legacy table's
--      columns, defaults, NOT NULLs and CHECKs (LIKE … INCLUDING …, so that
--      whatever a migration before this one changed is kept), primary key
--      (fill_id, matched_at) and the same secondary indexes under the same
--      names (read from the catalog: those of 002 and any added since);
--   3. fills_default, the DEFAULT partition: a row whose day has no
--      partition yet is stored there, never refused (a refused row would be
--      dead-lettered: not acceptable for a valid fill); the legacy table's
--      rows from tomorrow on, if any (test data, a clock ahead), are moved
--      there; then fills_legacy is attached FROM (MINVALUE) TO (the start of
--      tomorrow, UTC): its indexes are attached as they are, not rebuilt,
--      and the attach scans it once to check the bound;
--   4. the functions below; orderpipe-setup and the recorder call
--      orderpipe_fills_ensure_partitions() to create the daily partitions.
--
-- The primary key. A partitioned table's unique keys must include the
-- partition key, so it is (fill_id, matched_at), no longer (fill_id). It is
-- as strong in practice: a fill's matched_at is the ts of its report, and a
-- replayed report is the same bytes (same fill_id, same ts: the matcher is
-- deterministic), so a redelivered fill always meets its first copy in the
-- same partition. The recorder's fast path still gets its unique violation
-- on a redelivered row, and its safe path's ON CONFLICT DO NOTHING absorbs it.
-- What it no longer refuses is one fill_id with two different matched_at,
-- which no writer produces.
--
-- Locks and duration: ACCESS EXCLUSIVE on fills for the whole transaction
-- (reads and the recorder wait). Its cost is one unique index build on
-- (fill_id, matched_at) and two sequential scans of the table (the move of
-- rows beyond the bound, and the attach's check of the bound). On a large table, build
-- the index first without blocking anyone, and this migration reuses it:
--   CREATE UNIQUE INDEX CONCURRENTLY fills_fill_id_matched_at_key ON fills (fill_id, matched_at);
-- Upgrade the recorder before applying this migration: the previous one's
-- safe path says ON CONFLICT (fill_id), which no longer names a unique key
-- (it would retry its batch until upgraded; nothing is lost). This one says
-- ON CONFLICT DO NOTHING, which works on both schemas.

DO $$
DECLARE
    r record;
    legacy_hi timestamptz;
    defs text[] := '{}';
BEGIN
    -- Taken first, so that no one holds a weaker lock this transaction would
    -- have to upgrade (that would risk a deadlock with the recorder).
    LOCK TABLE fills IN ACCESS EXCLUSIVE MODE;

    -- 1. The legacy partition's upper bound: the start of tomorrow (UTC),
    --    so that today's fills keep landing there until the daily
    --    partitions begin. Rows beyond it (test data, a clock ahead) are
    --    moved to the default partition below, not covered by stretching
    --    the bound: one far-future row would otherwise leave no room for
    --    any daily partition.
    legacy_hi := (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';

    CREATE UNIQUE INDEX IF NOT EXISTS fills_fill_id_matched_at_key ON fills (fill_id, matched_at);

    -- The secondary indexes as they are defined now ("CREATE INDEX name ON
    -- schema.fills USING …"): run again once the name fills is the new table,
    -- they create the same indexes on it.
    FOR r IN
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'fills'::regclass AND NOT i.indisprimary
          AND c.relname <> 'fills_fill_id_matched_at_key'
        ORDER BY c.relname
    LOOP
        IF (SELECT indisunique FROM pg_index WHERE indexrelid = (quote_ident(r.name))::regclass) THEN
            -- It could not exist on the partitioned table without matched_at.
            RAISE EXCEPTION 'fills has a unique index % that the partitioned table cannot carry', r.name;
        END IF;
        defs := defs || r.def;
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.name,
                       'fills_legacy' || CASE WHEN r.name LIKE 'fills\_%' THEN substr(r.name, 6)
                                              ELSE '_' || r.name END);
    END LOOP;

    ALTER TABLE fills RENAME TO fills_legacy;
    ALTER TABLE fills_legacy DROP CONSTRAINT fills_pkey;
    ALTER TABLE fills_legacy ADD CONSTRAINT fills_legacy_pkey
        PRIMARY KEY USING INDEX fills_fill_id_matched_at_key;

    -- 2. The partitioned table.
    CREATE TABLE fills (LIKE fills_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                        INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (matched_at);
    ALTER TABLE fills ADD CONSTRAINT fills_pkey PRIMARY KEY (fill_id, matched_at);
    FOR i IN 1 .. coalesce(array_length(defs, 1), 0) LOOP
        EXECUTE defs[i];
    END LOOP;

    -- 3. The safety net first (the attach then checks it holds nothing of
    --    the legacy range), with the legacy table's rows beyond its bound;
    --    then the legacy table as the first partition (its indexes matched,
    --    not rebuilt).
    CREATE TABLE fills_default PARTITION OF fills DEFAULT;
    WITH moved AS (DELETE FROM fills_legacy WHERE matched_at >= legacy_hi RETURNING *)
    INSERT INTO fills_default SELECT * FROM moved;
    EXECUTE format('ALTER TABLE fills ATTACH PARTITION fills_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   legacy_hi);

    -- Every index of the legacy table must now be part of one of fills: an
    -- index left out would be a cost on its rows with no use for the reads.
    IF EXISTS (SELECT 1 FROM pg_index i
               WHERE i.indrelid = 'fills_legacy'::regclass
                 AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)) THEN
        RAISE EXCEPTION 'an index of fills_legacy matches no index of the partitioned fills';
    END IF;
END $$;

COMMENT ON TABLE fills IS
    'One row per trade, partitioned by day (UTC) of matched_at: fills_pYYYYMMDD, fills_legacy (rows before 007), fills_default (days without a partition yet; drained by orderpipe_fills_ensure_partitions). Primary key (fill_id, matched_at): see 007_fills_partitions.sql.';

-- The partitions of fills and their bounds, read from the catalog:
-- lo NULL is MINVALUE, hi NULL is MAXVALUE; the default partition has both
-- NULL and is_default. Used by the function below and by
-- ops/partitions.sh.
CREATE FUNCTION orderpipe_fills_partitions()
RETURNS TABLE (part regclass, lo timestamptz, hi timestamptz, is_default boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           CASE WHEN m[1] IN ('MINVALUE', 'MAXVALUE') THEN NULL ELSE btrim(m[1], '''')::timestamptz END,
           CASE WHEN m[2] IN ('MINVALUE', 'MAXVALUE') THEN NULL ELSE btrim(m[2], '''')::timestamptz END,
           b = 'DEFAULT'
    FROM pg_inherits h
    JOIN pg_class c ON c.oid = h.inhrelid
    CROSS JOIN LATERAL pg_get_expr(c.relpartbound, c.oid) AS b
    LEFT JOIN LATERAL regexp_match(b, '^FOR VALUES FROM \((.+?)\) TO \((.+?)\)$') AS m ON true
    WHERE h.inhparent = 'fills'::regclass
$$;

-- Creates the daily partitions fills_pYYYYMMDD (UTC days) that are missing:
-- from today to today + days_ahead, and every day of which the default
-- partition holds rows, whose rows it moves into the new partition (so the
-- default partition is drained by each call). A day that any partition
-- already covers, even in part, is left alone. Returns the number of
-- partitions created.
--
-- One transaction (the caller's statement): a partition is created as a
-- plain table, filled from the default partition (DELETE … RETURNING into
-- it), then attached. Idempotent, and safe to call concurrently (an advisory
-- lock serialises callers; the second finds nothing left to do).
--
-- Locks: only when it creates something, ACCESS EXCLUSIVE on fills_default
-- (taken before reading its rows, so that no insert slips in between the
-- move and the attach; the attach needs it anyway to check that no row of
-- the new range remains there) until the commit, and SHARE UPDATE EXCLUSIVE
-- on fills (the attach: reads and inserts go on). Every query on fills that
-- does not exclude the default partition by matched_at waits for that lock,
-- and a waiting ACCESS EXCLUSIVE queues everyone behind it: lock_timeout
-- (2 s) bounds that wait, and a call that times out changes nothing and is
-- simply retried later (the rows meanwhile go to the default partition).
-- SECURITY DEFINER (with a fixed search_path): the recorder's role may call
-- it without owning fills.
CREATE FUNCTION orderpipe_fills_ensure_partitions(days_ahead integer DEFAULT 7)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET lock_timeout = '2s' AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    d date;
    day_lo timestamptz;
    day_hi timestamptz;
    part_name text;
    created integer := 0;
    locked boolean := false;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 366 THEN
        RAISE EXCEPTION 'days_ahead must be 0 … 366, not %', days_ahead;
    END IF;
    PERFORM pg_advisory_xact_lock(6873354845781012326); -- 'orderpipe' + 1 (migrations use + 0)
    FOR d IN
        SELECT (today + k) FROM generate_series(0, days_ahead) AS k
        UNION
        SELECT DISTINCT (matched_at AT TIME ZONE 'UTC')::date FROM fills_default
        ORDER BY 1
    LOOP
        day_lo := d::timestamp AT TIME ZONE 'UTC';
        day_hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
        CONTINUE WHEN EXISTS (SELECT 1 FROM orderpipe_fills_partitions() p
                              WHERE NOT p.is_default
                                AND (p.lo IS NULL OR p.lo < day_hi) AND (p.hi IS NULL OR p.hi > day_lo));
        part_name := 'fills_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(quote_ident(part_name)) IS NOT NULL THEN
            -- A day an operator detached and has not dropped yet: its rows
            -- stay in the default partition until it is dealt with.
            RAISE WARNING 'table % exists and is not a partition of fills: day % left in fills_default',
                part_name, d;
            CONTINUE;
        END IF;
        IF NOT locked THEN
            LOCK TABLE fills_default IN ACCESS EXCLUSIVE MODE;
            locked := true;
        END IF;
        EXECUTE format('CREATE TABLE %I (LIKE fills INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                       ' INCLUDING STORAGE)', part_name);
        EXECUTE format('WITH moved AS (DELETE FROM fills_default'
                       ' WHERE matched_at >= $1 AND matched_at < $2 RETURNING *)'
                       ' INSERT INTO %I SELECT * FROM moved', part_name) USING day_lo, day_hi;
        EXECUTE format('ALTER TABLE fills ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part_name, day_lo, day_hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- Pinned to the schema fills lives in (and pg_temp last): a SECURITY
-- DEFINER function must not resolve names through its caller's search_path.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION orderpipe_fills_ensure_partitions(integer) SET search_path = %I, pg_temp',
                   current_schema());
END $$;
