-- Spend controls (API.md §6.5), kept with the wallet they control.
ALTER TABLE wallets
    ADD COLUMN monthly_credit_cap  bigint  NULL,
    ADD COLUMN refill_threshold    bigint  NULL,
    ADD COLUMN refill_amount       bigint  NULL,
    ADD COLUMN auto_refill_enabled boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT wallets_cap_not_negative CHECK (monthly_credit_cap IS NULL OR monthly_credit_cap >= 0),
    ADD CONSTRAINT wallets_refill_together CHECK ((refill_threshold IS NULL) = (refill_amount IS NULL)),
    ADD CONSTRAINT wallets_refill_values
        CHECK ((refill_threshold IS NULL OR refill_threshold >= 0) AND (refill_amount IS NULL OR refill_amount > 0)),
    ADD CONSTRAINT wallets_auto_refill_needs_values CHECK (NOT auto_refill_enabled OR refill_amount IS NOT NULL);
