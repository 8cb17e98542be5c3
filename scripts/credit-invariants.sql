-- The credit invariants (API.md §6), checked in SQL after a load or fault run:
--   psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -v granted=<credits granted by the operator> -f scripts/credit-invariants.sql
-- Prints one row per check and exits non-zero (3) if any fails.
\set ON_ERROR_STOP 1
\pset footer off

CREATE TEMP TABLE credit_checks AS
WITH ledger AS (
    SELECT organization_id, sum(credits) AS total FROM ledger_events GROUP BY organization_id
), held AS (
    SELECT organization_id, sum(credits) AS total FROM reservations WHERE status = 'held'
    GROUP BY organization_id
), totals AS (
    SELECT
        (SELECT coalesce(sum(balance), 0) FROM wallets) AS balances,
        (SELECT coalesce(sum(credits), 0) FROM ledger_events WHERE event_type = 'grant') AS granted,
        (SELECT coalesce(sum(credits), 0) FROM ledger_events WHERE event_type = 'usage') AS used,
        (SELECT coalesce(sum(credits), 0) FROM ledger_events WHERE event_type = 'adjustment') AS adjusted,
        (SELECT coalesce(sum(credits), 0) FROM ledger_events WHERE event_type IN ('allocation', 'reclaim')) AS moved,
        (SELECT coalesce(sum(settled_credits), 0) FROM reservations WHERE status = 'settled') AS settled
)
SELECT 1 AS n, 'wallets whose ledger sum differs from their balance' AS "check",
       (SELECT count(*) FROM wallets w LEFT JOIN ledger l USING (organization_id)
        WHERE w.balance <> coalesce(l.total, 0))::bigint AS value, 0::bigint AS expected
UNION ALL
SELECT 2, 'ledgers of organizations without a wallet',
       (SELECT count(*) FROM ledger l LEFT JOIN wallets w USING (organization_id)
        WHERE w.organization_id IS NULL), 0
UNION ALL
SELECT 3, 'wallets with reserved < 0 or reserved > balance',
       (SELECT count(*) FROM wallets WHERE reserved < 0 OR reserved > balance), 0
UNION ALL
SELECT 4, 'wallets whose reserved differs from their held reservations',
       (SELECT count(*) FROM wallets w LEFT JOIN held h USING (organization_id)
        WHERE w.reserved <> coalesce(h.total, 0)), 0
UNION ALL
SELECT 5, 'credits moved between wallets, net (allocations + reclaims)', moved, 0 FROM totals
UNION ALL
SELECT 6, 'credits spent (usage events) = settled reservations', -used, settled FROM totals
UNION ALL
SELECT 7, 'credits granted by the operator', granted, :granted FROM totals
UNION ALL
SELECT 8, 'total credits held = granted + adjustments - spent (conserved)', balances,
       granted + adjusted + used FROM totals;

SELECT "check", value, expected, CASE WHEN value = expected THEN 'ok' ELSE 'FAILED' END AS result
FROM credit_checks ORDER BY n;

SELECT bool_and(value = expected) AS credit_invariants_hold FROM credit_checks \gset
\if :credit_invariants_hold
\echo 'credit invariants: all hold'
\else
\echo 'credit invariants: FAILED'
SELECT 'credit invariants failed'::int;
\endif
