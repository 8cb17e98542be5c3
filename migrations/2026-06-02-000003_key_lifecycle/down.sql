DROP INDEX api_keys_organization_active;
CREATE INDEX api_keys_organization_active
    ON api_keys (organization_id) WHERE revoked_at IS NULL;
ALTER TABLE api_keys
    DROP CONSTRAINT api_keys_not_superseded_by_itself,
    DROP CONSTRAINT api_keys_supersession_whole,
    DROP CONSTRAINT api_keys_revoked_or_killed,
    DROP COLUMN grace_until,
    DROP COLUMN superseded_by,
    DROP COLUMN rotated_at,
    DROP COLUMN killed_at;
