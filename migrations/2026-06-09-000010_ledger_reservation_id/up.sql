-- The reservation a ledger event came from (API.md §6.3 `reservationId`): a settle's `usage`, and
-- the `reclaim` of what an archived organization's reservation released. NULL for every other
-- event, and for those written before this column existed. Adding a nullable column rewrites no
-- row, so the ledger's append-only trigger is not involved.
ALTER TABLE ledger_events
    ADD COLUMN reservation_id uuid NULL REFERENCES reservations (id);
