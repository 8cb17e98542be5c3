-- API keys (API.md §2.1, §5): the handle is the lookup index; only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    name            text        NOT NULL,
    env             text        NOT NULL,
    handle          text        NOT NULL,
    secret_hash     bytea       NOT NULL,
    scopes          text[]      NOT NULL,
    rate_limit_tier text        NOT NULL,
    revoked_at      timestamptz NULL,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NULL,

    CONSTRAINT api_keys_handle_unique UNIQUE (handle),
    CONSTRAINT api_keys_env_known
        CHECK (env IN ('live', 'test')),
    CONSTRAINT api_keys_handle_format
        CHECK (handle ~ '^[0-9A-HJKMNP-TV-Z]{16}$'),
    CONSTRAINT api_keys_secret_hash_sha256
        CHECK (octet_length(secret_hash) = 32),
    CONSTRAINT api_keys_scopes_not_null
        CHECK (array_position(scopes, NULL) IS NULL),
    CONSTRAINT api_keys_rate_limit_tier_known
        CHECK (rate_limit_tier IN ('standard', 'pilot', 'partner', 'sandbox', 'unlimited')),
    CONSTRAINT api_keys_name_length
        CHECK (char_length(name) BETWEEN 1 AND 120)
);

-- Keyset pagination of an organization's keys, newest first (API.md §1.5).
CREATE INDEX api_keys_organization_keyset
    ON api_keys (organization_id, created_at DESC, id DESC);

-- Counting and revoking the active keys of an organization (archive, the org summary).
CREATE INDEX api_keys_organization_active
    ON api_keys (organization_id) WHERE revoked_at IS NULL;
