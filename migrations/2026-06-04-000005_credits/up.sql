-- Wallets and the append-only ledger (API.md §6). For every wallet the sum of its ledger
-- equals its balance: both are written by the same transactions, and the ledger refuses
-- UPDATE and DELETE.
CREATE TABLE wallets (
    organization_id uuid   PRIMARY KEY REFERENCES organizations (id),
    balance         bigint NOT NULL DEFAULT 0,
    reserved        bigint NOT NULL DEFAULT 0,

    CONSTRAINT wallets_balance_not_negative CHECK (balance >= 0),
    CONSTRAINT wallets_reserved_within_balance CHECK (reserved >= 0 AND reserved <= balance)
);

CREATE TABLE ledger_events (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    event_type      text        NOT NULL,
    credits         bigint      NOT NULL,
    balance_after   bigint      NOT NULL,
    transfer_id     uuid        NULL,
    description     text        NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL,

    CONSTRAINT ledger_events_type_known
        CHECK (event_type IN ('grant', 'allocation', 'usage', 'reclaim', 'adjustment')),
    CONSTRAINT ledger_events_moves_credits CHECK (credits <> 0),
    CONSTRAINT ledger_events_balance_not_negative CHECK (balance_after >= 0),
    CONSTRAINT ledger_events_metadata_string_map CHECK (organization_metadata_is_valid(metadata))
);

-- Keyset pagination of a wallet's ledger, newest first (API.md §1.5).
CREATE INDEX ledger_events_keyset ON ledger_events (organization_id, created_at DESC, id DESC);

CREATE FUNCTION ledger_events_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_events_append_only
    BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_events_append_only();
