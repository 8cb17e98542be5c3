-- The organization status latch (crates/adapters-pg/src/status_latch.rs): a transaction-scoped
-- advisory lock per organization, in the two-key form under namespace 1869768481 ("org!"), so it
-- never meets the migrations' one-key lock. Functions rather than statements sent by the server:
-- PL/pgSQL keeps their plans for the session, and the shared form takes its locks and reads the
-- statuses in one round trip.

-- Exclusive, taken first by every change of an organization's status.
CREATE FUNCTION status_latch_exclusive(organization uuid) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(1869768481, hashtext(organization::text));
$$;

-- Shared, on the organization and its parent in id order (one order everywhere: no cycle of
-- waits), then the two statuses. VOLATILE: the read after the locks takes a snapshot of its own,
-- so it sees a status change that committed while the latch was waited for. No row when the
-- organization does not exist.
CREATE FUNCTION status_latch_share(
    organization uuid, OUT status text, OUT parent uuid, OUT parent_status text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latched uuid;
BEGIN
    SELECT o.parent_id INTO parent FROM organizations o WHERE o.id = organization;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR latched IN
        SELECT id FROM unnest(ARRAY[organization, parent]) AS id WHERE id IS NOT NULL ORDER BY id
    LOOP
        PERFORM pg_advisory_xact_lock_shared(1869768481, hashtext(latched::text));
    END LOOP;
    SELECT o.status, p.status INTO status, parent_status
    FROM organizations o LEFT JOIN organizations p ON p.id = o.parent_id
    WHERE o.id = organization;
    RETURN NEXT;
END
$$;
