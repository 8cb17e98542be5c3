-- Scheduled work (API.md §8): a durable queue. Done and cancelled jobs are deleted; a job held by
-- a suspended organization simply stays pending until it can be claimed.
CREATE TABLE jobs (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NULL REFERENCES organizations (id),
    kind            text        NOT NULL,
    payload         text        NOT NULL,
    run_at          timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    token           uuid        NULL,
    lease_until     timestamptz NULL,

    CONSTRAINT jobs_claim_whole CHECK ((token IS NULL) = (lease_until IS NULL)),
    CONSTRAINT jobs_attempts_not_negative CHECK (attempts >= 0)
);

-- Claiming picks due jobs by time; archive cancels an organization's.
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_organization ON jobs (organization_id);
