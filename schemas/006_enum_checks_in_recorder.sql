-- 006: the enum columns of orders are checked by the recorder, not by IN lists in every insert.
--
-- Applied by orderpipe-setup in its own transaction. Append-only, like 001.

-- The CHECKs side IN (…), type IN (…), tif IN (…) and status IN (…) of 001
-- compared every orders row's four texts with each name of their lists:
-- ~0.3 us of PostgreSQL CPU per orders row written (binary COPY of 1,000,000
-- orders rows, with and without these four, interleaved; docs/recorder.md),
-- nearly all of the orders CHECKs' cost. The recorder writes these columns
-- only from the enums it decodes (shared/msg.c's names) and sets aside, and
-- dead-letters alone, any report other than a REJECTED one whose side,
-- type, tif or status is outside them (recorder/batch.c), with the
-- constraint's name in the dead letter's error; a REJECTED order's unknown
-- values are written as NULL, as before. The integer CHECKs (order_id, qty,
-- filled_qty) and the client_order_id length stay: they cost little. Dropping
-- a CHECK takes a brief ACCESS EXCLUSIVE lock and rewrites nothing.
ALTER TABLE orders
    DROP CONSTRAINT orders_side_check,
    DROP CONSTRAINT orders_type_check,
    DROP CONSTRAINT orders_tif_check,
    DROP CONSTRAINT orders_status_check;
