-- 002: what the recorder needs: out-of-order order rows, read-side indexes, dead letters.
--
-- Applied by orderpipe-setup in its own transaction. Append-only, like 001.

-- A maker's state arrives in a TRADE report that does not carry the maker's
-- description (side, type, tif, post_only, client_order_id, created_at).
-- With several recorders in parallel, that TRADE may be committed before the
-- maker's own ACCEPTED report: the recorder then inserts the row with the
-- state only, and the description columns are filled in (COALESCE) when a
-- report carrying them arrives. `side IS NULL` marks such a row; account,
-- symbol and the state columns are always known. The read side shows the
-- missing values as null for that short window.
ALTER TABLE orders
    ALTER COLUMN side DROP NOT NULL,
    ALTER COLUMN type DROP NOT NULL,
    ALTER COLUMN tif DROP NOT NULL,
    ALTER COLUMN post_only DROP NOT NULL,
    ALTER COLUMN created_at DROP NOT NULL;

-- An order row is inserted once and updated by every later report about it
-- (each fill of a resting order). Leaving a fifth of each page free lets
-- those updates stay on the page (HOT: no index entry per update, since no
-- indexed column changes), which keeps them cheap and the table compact.
ALTER TABLE orders SET (fillfactor = 80);

-- GET /v1/fills by account: WHERE (taker_account = $1 OR maker_account = $1)
-- ORDER BY fill_id DESC LIMIT n -> a BitmapOr of these two, or an ordered
-- scan of either when the query is split in two. fill_id in the key serves
-- the ORDER BY and makes each entry unique (no long duplicate chains).
CREATE INDEX fills_taker_account_idx ON fills (taker_account, fill_id);
CREATE INDEX fills_maker_account_idx ON fills (maker_account, fill_id);
-- Fills of one order (either side). No other index: each one costs every
-- insert of the recorder's COPY path.
CREATE INDEX fills_taker_order_idx ON fills (taker_order_id);
CREATE INDEX fills_maker_order_idx ON fills (maker_order_id);

-- Stream entries the recorder could not record: undecodable, an unknown
-- symbol, or a row the tables' constraints refuse. The entry is acknowledged
-- so it never blocks its stream; `raw` is its `m` field, byte for byte, so it
-- can be inspected and replayed. (stream, entry_id) is unique so that a
-- redelivered poison entry is recorded once.
CREATE TABLE dead_letters (
    id       bigserial   PRIMARY KEY,
    stream   text        NOT NULL,          -- e.g. fills:{2}
    entry_id text        NOT NULL,          -- the stream entry id, e.g. 1700000000000-0
    raw      bytea,                         -- the entry's `m` field (NULL if it had none)
    error    text        NOT NULL,          -- why it was refused
    at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, entry_id)
);
