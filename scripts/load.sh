#!/usr/bin/env bash
# Load test of the real release server on PostgreSQL, with the kill switch under load, beside the
# one-SELECT baseline (crates/bench `baseline`) driven by the same client in the same run.
#
#   scripts/load.sh                          # 20 s mixed + 10 s baseline, 1,000 children
#   DURATION=60 CONNECTIONS=64 scripts/load.sh
#
# - A throw-away database on the PostgreSQL at 127.0.0.1:5432 (scripts/pg-test-cluster.sh makes
#   sure one answers), dropped at the end.
# - TWO server processes (release) and two baseline processes on that database; the load client
#   (crates/bench `load`, Rust: reqwest + tokio) spreads every request over both.
# - Setup through the API, in parallel: CHILDREN child organizations, each with its own key
#   (scopes credits:read, credits:write) and CREDITS credits allocated by the parent. Every key is
#   then moved to the `unlimited` rate-limit tier with one SQL UPDATE (what `server set-key-tier`
#   does one key at a time): the run measures the service, not its limits.
# - The mixed workload: parent reads (GET a child, list), child reads (whoami, GET /v1/credits),
#   parent patches, suspend/resume of a set of children by the parent, reservations by the
#   children (each then settled for 1 credit or released). Per-route throughput and exact
#   p50/p99/p99.9 from the client's own record of every request, each as a ratio of the baseline.
# - The kill switch under load: a third of the way in, the parent suspends KILL_SWITCH_CHILDREN
#   children whose keys are hammering both processes; two thirds in, it resumes them. Counts, from
#   the client's timestamps, child requests answered 2xx that started after the suspend answered
#   (must be 0), and 503 KILL_SWITCH for requests that started after the resume answered (must
#   be 0).
# - Afterwards, the credit invariants in SQL (scripts/credit-invariants.sql).
# Exits non-zero if any count is not 0, any request got an unexpected answer, or an invariant fails.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-20}"
BASELINE_DURATION="${BASELINE_DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
CHILDREN="${CHILDREN:-1000}"
CREDITS="${CREDITS:-1000}"
KILL_SWITCH_CHILDREN="${KILL_SWITCH_CHILDREN:-50}"
HTTP_WORKERS="${HTTP_WORKERS:-2}"
ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${PORT:-18380}" # servers on PORT and PORT+1, baselines on PORT+2 and PORT+3

command -v psql >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; }
bash scripts/pg-test-cluster.sh >/dev/null
echo "== cargo build --release -p server -p bench"
cargo build --release -q -p server -p bench

db="load_$$"
url="${ADMIN_URL%/*}/$db"
work="target/load/$db"
logs="target/load"
mkdir -p "$work"
psql "$ADMIN_URL" -q -c "CREATE DATABASE $db"
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT INT TERM

key="$(python3 - <<'PY'
import base64, secrets
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
handle = "".join(secrets.choice(alphabet) for _ in range(16))
secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
print(f"lp_live_{handle}_{secret}")
PY
)"
total_credits=$((CHILDREN * CREDITS))
# Migrations first, by one process, so the two servers start on a ready schema.
DATABASE_URL="$url" ./target/release/server migrate >/dev/null
servers=() baselines=()
for i in 0 1; do
    DATABASE_URL="$url" BIND_ADDR="127.0.0.1:$((PORT + i))" BOOTSTRAP_ADMIN_KEY="$key" \
        BOOTSTRAP_RATE_LIMIT_TIER=unlimited BOOTSTRAP_CREDITS="$total_credits" \
        HTTP_WORKERS="$HTTP_WORKERS" RUST_LOG=warn LOG_FORMAT=json ./target/release/server >"$logs/server-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$((PORT + i))/readyz" && break; sleep 0.1; done
    servers+=("http://127.0.0.1:$((PORT + i))")
    DATABASE_URL="$url" BIND_ADDR="127.0.0.1:$((PORT + 2 + i))" HTTP_WORKERS="$HTTP_WORKERS" ./target/release/baseline &
    pids+=($!)
    baselines+=("http://127.0.0.1:$((PORT + 2 + i))")
done
for b in "${baselines[@]}"; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "$b/" && break; sleep 0.1; done
done

export ADMIN_KEY="$key"
servers_csv="$(IFS=,; echo "${servers[*]}")"
baselines_csv="$(IFS=,; echo "${baselines[*]}")"
echo "machine: $(nproc) cores; 2 server processes and 2 baseline processes, $HTTP_WORKERS HTTP workers each, pool 10 each; database $db"
./target/release/load setup --servers "$servers_csv" --children "$CHILDREN" --credits "$CREDITS" \
    --connections "$CONNECTIONS" --out "$work/children.tsv"
psql "$url" -q -c "UPDATE api_keys SET rate_limit_tier = 'unlimited'"

status=0
./target/release/load run --servers "$servers_csv" --baseline "$baselines_csv" \
    --children-file "$work/children.tsv" --connections "$CONNECTIONS" --duration "$DURATION" \
    --baseline-duration "$BASELINE_DURATION" --kill-switch-children "$KILL_SWITCH_CHILDREN" || status=$?

echo
echo "== credit invariants (SQL)"
psql "$url" -X -q -v ON_ERROR_STOP=1 -v granted="$total_credits" -f scripts/credit-invariants.sql || status=1
errors="$(cat "$logs"/server-*.log | grep -c '"level":"ERROR"' || true)"
echo "server log lines at ERROR level (5xx causes): $errors (logs: $logs/)"
[[ $errors -eq 0 ]] || status=1
exit "$status"
