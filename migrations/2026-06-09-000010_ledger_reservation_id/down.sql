ALTER TABLE ledger_events DROP COLUMN reservation_id;
