-- Reservations (API.md §6.4): credits held for work in flight, then settled, released or expired.
CREATE TABLE reservations (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    credits         bigint      NOT NULL,
    status          text        NOT NULL,
    settled_credits bigint      NULL,
    finished_at     timestamptz NULL,
    description     text        NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,

    CONSTRAINT reservations_credits_positive CHECK (credits > 0),
    CONSTRAINT reservations_status_known
        CHECK (status IN ('held', 'settled', 'released', 'expired')),
    CONSTRAINT reservations_finished_iff_not_held CHECK ((status = 'held') = (finished_at IS NULL)),
    CONSTRAINT reservations_settled_amount
        CHECK ((status = 'settled') = (settled_credits IS NOT NULL)
               AND (settled_credits IS NULL OR settled_credits BETWEEN 0 AND credits))
);

-- Expiry picks held reservations by due time; finished ones never need it.
CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'held';
