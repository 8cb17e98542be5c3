-- Organizations: top-level partners and their children, one level deep (API.md §2.3, §4).

-- Metadata is a JSON object of string values (API.md §4.1). Immutable, so a CHECK may use it.
CREATE FUNCTION organization_metadata_is_valid(metadata jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT jsonb_typeof(metadata) = 'object'
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_each(metadata) AS pair WHERE jsonb_typeof(pair.value) <> 'string'
       )
$$;

CREATE TABLE organizations (
    id            uuid        PRIMARY KEY,
    parent_id     uuid        NULL REFERENCES organizations (id),
    name          text        NOT NULL,
    status        text        NOT NULL,
    suspended_at  timestamptz NULL,
    archived_at   timestamptz NULL,
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    billing_email text        NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    revision      bigint      NOT NULL,

    CONSTRAINT organizations_status_known
        CHECK (status IN ('active', 'suspended', 'archived')),
    -- The instants live with the states they belong to: suspended ⇔ suspended_at, archived ⇔
    -- archived_at.
    CONSTRAINT organizations_suspended_at_iff_suspended
        CHECK ((status = 'suspended') = (suspended_at IS NOT NULL)),
    CONSTRAINT organizations_archived_at_iff_archived
        CHECK ((status = 'archived') = (archived_at IS NOT NULL)),
    CONSTRAINT organizations_name_length
        CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT organizations_billing_email_length
        CHECK (billing_email IS NULL OR char_length(billing_email) BETWEEN 3 AND 254),
    CONSTRAINT organizations_metadata_string_map
        CHECK (organization_metadata_is_valid(metadata)),
    CONSTRAINT organizations_revision_positive
        CHECK (revision >= 1),
    CONSTRAINT organizations_not_own_parent
        CHECK (parent_id IS NULL OR parent_id <> id)
);

-- Keyset pagination of a parent's children, newest first (API.md §1.5).
CREATE INDEX organizations_children_keyset
    ON organizations (parent_id, created_at DESC, id DESC);

-- One level deep, enforced here too: a child's parent must be top-level, and the parent of an
-- organization never changes (so a top-level organization with children can never become a
-- child, and a child can never be moved under another child).
CREATE FUNCTION organizations_enforce_one_level() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        RAISE EXCEPTION 'the parent of organization % cannot change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.parent_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM organizations AS parent
        WHERE parent.id = NEW.parent_id AND parent.parent_id IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'organization % is a child: children are one level deep', NEW.parent_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER organizations_one_level
    BEFORE INSERT OR UPDATE OF parent_id ON organizations
    FOR EACH ROW EXECUTE FUNCTION organizations_enforce_one_level();
