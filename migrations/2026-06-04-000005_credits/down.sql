DROP TRIGGER ledger_events_append_only ON ledger_events;
DROP FUNCTION ledger_events_append_only();
DROP TABLE ledger_events;
DROP TABLE wallets;
