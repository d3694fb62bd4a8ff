-- 001: the contract's tables: one row per order, one row per fill.
--
-- Applied by orderpipe-setup (shared/pg.c op_pg_migrate) in its own
-- transaction and recorded in schema_migrations. Migrations are append-only:
-- never edit an applied file, add 002_… instead.

-- One row per order, as answered by GET /v1/orders/{id}. The recorder writes
-- it from execution reports; `version` is the report_id of the last report
-- applied, so an order's state only ever moves forward even when reports
-- arrive out of order or twice.
CREATE TABLE orders (
    order_id        bigint      PRIMARY KEY CHECK (order_id > 0),
    client_order_id text        CHECK (client_order_id ~ '^[A-Za-z0-9._-]{1,36}$'),
    account         text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    type            text        NOT NULL CHECK (type IN ('limit', 'market')),
    tif             text        NOT NULL CHECK (tif IN ('GTC', 'IOC', 'FOK')),
    post_only       boolean     NOT NULL DEFAULT false,
    price           numeric     CHECK (price > 0),            -- NULL for market orders
    qty             bigint      NOT NULL CHECK (qty >= 1),    -- total, after any amend
    filled_qty      bigint      NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    status          text        NOT NULL CHECK (status IN
                        ('NEW', 'PARTIALLY_FILLED', 'FILLED', 'CANCELLED', 'REJECTED')),
    reject_reason   text,                                     -- or cancel reason
    created_at      timestamptz NOT NULL,                     -- ingest receipt time
    updated_at      timestamptz NOT NULL,                     -- time of the last event
    version         bigint      NOT NULL                      -- report_id last applied
);

-- One row per trade. fill_id is the matcher's report_id: within a symbol,
-- fill_id order is match order, and a replayed report has the same fill_id,
-- so ON CONFLICT DO NOTHING absorbs redelivery.
CREATE TABLE fills (
    fill_id         bigint      PRIMARY KEY,
    symbol          text        NOT NULL,
    price           numeric     NOT NULL CHECK (price > 0),
    qty             bigint      NOT NULL CHECK (qty >= 1),
    maker_order_id  bigint      NOT NULL,
    taker_order_id  bigint      NOT NULL,
    maker_account   text        NOT NULL,
    taker_account   text        NOT NULL,
    taker_side      text        NOT NULL CHECK (taker_side IN ('buy', 'sell')),
    matched_at      timestamptz NOT NULL
);
