-- Key lifecycle beyond revocation (API.md §5.2, §5.4): killed keys, rotation with a grace window.
ALTER TABLE api_keys
    ADD COLUMN killed_at     timestamptz NULL,
    ADD COLUMN rotated_at    timestamptz NULL,
    ADD COLUMN superseded_by uuid        NULL REFERENCES api_keys (id),
    ADD COLUMN grace_until   timestamptz NULL,
    -- A key ends one way: revoked or killed, never both.
    ADD CONSTRAINT api_keys_revoked_or_killed
        CHECK (revoked_at IS NULL OR killed_at IS NULL),
    -- A superseded key always has the end of its grace, and only a superseded key has one.
    ADD CONSTRAINT api_keys_supersession_whole
        CHECK ((superseded_by IS NULL) = (grace_until IS NULL)),
    ADD CONSTRAINT api_keys_not_superseded_by_itself
        CHECK (superseded_by IS NULL OR superseded_by <> id);

DROP INDEX api_keys_organization_active;
CREATE INDEX api_keys_organization_active
    ON api_keys (organization_id) WHERE revoked_at IS NULL AND killed_at IS NULL;
