-- 004: one bad report is dead-lettered alone, and every rejected order gets its row.
--
-- Applied by orderpipe-setup in its own transaction. Append-only, like 001.

-- The recorder bisects a refused batch down to a single report (not a whole
-- fills entry, which carries every report of a matcher batch): a dead letter
-- then names the entry and the index of the report in its `m` array, and
-- `raw` holds that report alone (a one-report msgpack array). report is NULL
-- when the whole entry is dead (it could not be decoded at all). The key
-- keeps a redelivered poison recorded once, for either kind.
ALTER TABLE dead_letters ADD COLUMN report integer CHECK (report >= 0);
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_stream_entry_id_key;
CREATE UNIQUE INDEX dead_letters_entry_report_key
    ON dead_letters (stream, entry_id, (COALESCE(report, -1)));

-- An input written straight into orders:{S} with qty 0 or below is rejected
-- by the matcher (BAD_QTY); its row records the rejection with qty NULL
-- (there is no quantity to show), which only a REJECTED row may have.
ALTER TABLE orders ALTER COLUMN qty DROP NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_qty_known CHECK (qty IS NOT NULL OR status = 'REJECTED');
