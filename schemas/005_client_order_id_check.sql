-- 005: the client_order_id grammar is checked by the recorder, not by a regex in every insert.
--
-- Applied by orderpipe-setup in its own transaction. Append-only, like 001.

-- The CHECK (client_order_id ~ '^[A-Za-z0-9._-]{1,36}$') of 001 ran the
-- regex engine for every orders row the recorder writes: ~7% of the
-- backend's CPU on the write path (issue 13). Every writer of the column
-- already enforces the grammar in C: ingest refuses a bad id (400), the
-- matcher rejects an input carrying one (BAD_CLIENT_ORDER_ID), and the
-- recorder writes NULL for it on a REJECTED row and dead-letters any other
-- report that carries one (recorder/batch.c). What stays here is the cheap
-- bound on its length.
ALTER TABLE orders DROP CONSTRAINT orders_client_order_id_check;
ALTER TABLE orders ADD CONSTRAINT orders_client_order_id_length
    CHECK (octet_length(client_order_id) BETWEEN 1 AND 36);
