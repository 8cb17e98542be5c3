-- The audit log (API.md §9) and webhooks (§7): endpoints, the outbox of events, and one delivery
-- per event and endpoint. Events and deliveries are written by the transaction of the change that
-- caused them; each pending delivery is scheduled as a `webhook.deliver` job (same id) bound to
-- the endpoint's owner, so the job queue holds it while the owner (or its parent) is suspended.

-- Append-only: one row per material action. Rows reference their organization without cascade
-- (organizations are archived, never deleted), so an archived organization keeps its log.
CREATE TABLE audit_events (
    id                    uuid        PRIMARY KEY,
    event_type            text        NOT NULL,
    occurred_at           timestamptz NOT NULL,
    request_id            text        NULL,
    organization_id       uuid        NOT NULL REFERENCES organizations (id),
    actor_type            text        NOT NULL,
    -- The key that acted and its organization (not foreign keys: a record of who, kept as is).
    actor_api_key_id      uuid        NULL,
    actor_organization_id uuid        NULL,
    data                  text        NOT NULL,

    CONSTRAINT audit_events_type_known CHECK (event_type IN (
        'organization.created', 'organization.updated', 'organization.suspended',
        'organization.resumed', 'organization.archived', 'api_key.created', 'api_key.rotated',
        'api_key.revoked', 'api_key.killed', 'credits.granted', 'credits.allocated',
        'credits.reclaimed', 'reservation.created', 'reservation.settled',
        'reservation.released', 'reservation.expired', 'credit_config.updated',
        'webhook_endpoint.created', 'webhook_endpoint.updated', 'webhook_endpoint.deleted',
        'kill_switch.refused')),
    CONSTRAINT audit_events_actor_known CHECK (actor_type IN ('api_key', 'operator')),
    -- An API key actor names its key and organization; the operator names neither.
    CONSTRAINT audit_events_actor_whole CHECK (
        (actor_type = 'api_key') = (actor_api_key_id IS NOT NULL)
        AND (actor_api_key_id IS NULL) = (actor_organization_id IS NULL))
);

-- Keyset pagination of an organization's log, newest first.
CREATE INDEX audit_events_keyset ON audit_events (organization_id, occurred_at DESC, id DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Kill-switch refusals are audited at most once per key per window: the last one recorded per
-- key, moved forward by a guarded upsert (concurrent refusals queue on the row). A throttle, not
-- a record: no foreign key.
CREATE TABLE kill_switch_refusals (
    api_key_id uuid        PRIMARY KEY,
    last_at    timestamptz NOT NULL
);

-- Endpoints. A deleted endpoint keeps its row (deleted_at) so its deliveries keep their history;
-- every read and the fan-out skip it.
CREATE TABLE webhook_endpoints (
    id                   uuid        PRIMARY KEY,
    organization_id      uuid        NOT NULL REFERENCES organizations (id),
    url                  text        NOT NULL,
    events               text[]      NOT NULL,
    scope                text        NOT NULL,
    status               text        NOT NULL,
    description          text        NULL,
    signing_secret       text        NOT NULL,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    deleted_at           timestamptz NULL,

    CONSTRAINT webhook_endpoints_scope_known CHECK (scope IN ('own', 'all_children')),
    CONSTRAINT webhook_endpoints_status_known
        CHECK (status IN ('enabled', 'disabled', 'auto_paused')),
    CONSTRAINT webhook_endpoints_url_length CHECK (char_length(url) BETWEEN 1 AND 2048),
    -- "*" alone, or 1-50 event types.
    CONSTRAINT webhook_endpoints_events_shape CHECK (
        cardinality(events) BETWEEN 1 AND 50
        AND array_position(events, NULL) IS NULL
        AND (events = ARRAY['*'] OR array_position(events, '*') IS NULL)),
    CONSTRAINT webhook_endpoints_description_length
        CHECK (description IS NULL OR char_length(description) <= 500),
    CONSTRAINT webhook_endpoints_failures_not_negative CHECK (consecutive_failures >= 0)
);

-- Keyset pagination of an organization's endpoints, newest first; also the fan-out's lookup of
-- the endpoints of an event's organization and of its parent.
CREATE INDEX webhook_endpoints_organization_keyset
    ON webhook_endpoints (organization_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- The outbox: each event's body exactly as every delivery sends it.
CREATE TABLE webhook_events (
    id              uuid        PRIMARY KEY,
    event_type      text        NOT NULL,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    created_at      timestamptz NOT NULL,
    body            text        NOT NULL,
    replay_of       uuid        NULL,

    CONSTRAINT webhook_events_type_known CHECK (event_type IN (
        'organization.created', 'organization.updated', 'organization.suspended',
        'organization.resumed', 'organization.archived', 'credits.allocated',
        'credits.reclaimed', 'api_key.created', 'api_key.revoked', 'test.ping'))
);

CREATE TABLE webhook_deliveries (
    id                   uuid        PRIMARY KEY,
    endpoint_id          uuid        NOT NULL REFERENCES webhook_endpoints (id),
    event_id             uuid        NOT NULL REFERENCES webhook_events (id),
    event_type           text        NOT NULL,
    status               text        NOT NULL,
    attempts             integer     NOT NULL DEFAULT 0,
    last_error           text        NULL,
    last_response_status smallint    NULL,
    last_attempt_at      timestamptz NULL,
    next_attempt_at      timestamptz NULL,
    created_at           timestamptz NOT NULL,

    CONSTRAINT webhook_deliveries_status_known
        CHECK (status IN ('pending', 'succeeded', 'failed', 'abandoned', 'canceled')),
    CONSTRAINT webhook_deliveries_attempts_not_negative CHECK (attempts >= 0),
    CONSTRAINT webhook_deliveries_response_is_http
        CHECK (last_response_status IS NULL OR last_response_status BETWEEN 100 AND 599)
);

-- Keyset pagination of an endpoint's deliveries, newest first; also the cancellation of an
-- endpoint's pending deliveries (delete, archive).
CREATE INDEX webhook_deliveries_keyset
    ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

-- Jobs sharing a queue run one at a time, in order (a webhook endpoint's deliveries, so a
-- receiver gets its events in the order they happened): `seq` is the order jobs were scheduled
-- in, the tie-break of jobs due at one instant.
ALTER TABLE jobs ADD COLUMN queue text NULL;
ALTER TABLE jobs ADD COLUMN seq bigserial NOT NULL;
CREATE INDEX jobs_queue_order ON jobs (queue, run_at, seq) WHERE queue IS NOT NULL;

-- Held jobs are parked by the worker that meets them, so claims stop walking over them: a claim
-- reads only unparked jobs (a partial index), however many are held. Suspend and resume still
-- write one row; a worker unparks a resumed organization's jobs at its next claim.
ALTER TABLE jobs ADD COLUMN parked boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_claimable ON jobs (run_at, seq) WHERE NOT parked;
CREATE INDEX jobs_parked ON jobs (organization_id) WHERE parked;
CREATE INDEX jobs_unparked_organization ON jobs (organization_id) WHERE NOT parked;
-- A queue's rows change all the time (claims, parking): keep its statistics and indexes fresh
-- well before the default 10-20 % of the table has changed, so the planner keeps reading the
-- partial indexes.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
-- Where parking starts: the suspended organizations (few, whatever the number of organizations).
CREATE INDEX organizations_suspended ON organizations (id) WHERE status = 'suspended';
CREATE TABLE parked_organizations (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id)
);
