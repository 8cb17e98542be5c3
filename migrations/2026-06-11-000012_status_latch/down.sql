DROP FUNCTION status_latch_share(uuid);
DROP FUNCTION status_latch_exclusive(uuid);
