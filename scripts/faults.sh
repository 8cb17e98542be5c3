#!/usr/bin/env bash
# PostgreSQL stopped and started again under load. Runs its OWN throw-away PostgreSQL cluster on a
# free port (never the shared one on 5432), two release server processes on it, and the load
# client (crates/bench `load outage`) with the mixed workload of scripts/load.sh. While the load
# runs, the cluster is stopped (`pg_ctl stop -m fast`: every session is cut) and, DOWN_FOR seconds
# later, started again. Checks and prints:
#   - during the outage only `503 UNAVAILABLE` (any other non-2xx answer in the whole run, or a
#     request with no answer at all, is counted and must be 0);
#   - full service after: every request 2xx again, and how long after the database came back that
#     took (must be within RECOVERY_LIMIT seconds);
#   - the credit invariants afterwards, in SQL (scripts/credit-invariants.sql): every wallet's
#     ledger sum equals its balance, reserved within balance and equal to the held reservations,
#     credits conserved.
#
#   scripts/faults.sh                       # 30 s of load; stop after 6 s, down for 8 s
#   DURATION=40 DOWN_FOR=15 STOP_MODE=immediate scripts/faults.sh
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-30}"
STOP_AFTER="${STOP_AFTER:-6}"
DOWN_FOR="${DOWN_FOR:-8}"
STOP_MODE="${STOP_MODE:-fast}" # pg_ctl's shutdown mode: fast (sessions cut) or immediate (a crash)
RECOVERY_LIMIT="${RECOVERY_LIMIT:-30}"
CONNECTIONS="${CONNECTIONS:-32}"
CHILDREN="${CHILDREN:-200}"
CREDITS="${CREDITS:-1000}"
HTTP_WORKERS="${HTTP_WORKERS:-2}"
PORT="${PORT:-18480}" # servers on PORT and PORT+1

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port="${FAULTS_PG_PORT:-$(free_port)}"
pg_dir="$(mktemp -d /tmp/faults-pg.XXXXXX)"
logs="target/faults"
mkdir -p "$logs"
chmod 755 "$pg_dir"
# synchronous_commit on: a commit is acknowledged once its WAL is written, so an immediate stop
# (a crash of PostgreSQL) loses no acknowledged write. (fsync stays off: the OS does not crash.)
export PGTEST_EXTRA_OPTIONS="-c synchronous_commit=on"
cluster() { PGTEST_PORT="$pg_port" PGTEST_DIR="$pg_dir" bash scripts/pg-test-cluster.sh "$@"; }
bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

echo "== cargo build --release -p server -p bench"
cargo build --release -q -p server -p bench

pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    cluster stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
    exit "$status"
}
trap cleanup EXIT INT TERM

cluster >/dev/null
url="postgres://postgres@127.0.0.1:$pg_port/faults"
psql "postgres://postgres@127.0.0.1:$pg_port/postgres" -q -c "CREATE DATABASE faults"
stop_cmd="runuser -u postgres -- $bin/pg_ctl -D $pg_dir/data -m $STOP_MODE -w stop"
[[ $(id -u) -eq 0 ]] || stop_cmd="$bin/pg_ctl -D $pg_dir/data -m $STOP_MODE -w stop"
start_cmd="PGTEST_PORT=$pg_port PGTEST_DIR=$pg_dir bash scripts/pg-test-cluster.sh"

key="$(python3 - <<'PY'
import base64, secrets
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
handle = "".join(secrets.choice(alphabet) for _ in range(16))
secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
print(f"lp_live_{handle}_{secret}")
PY
)"
total_credits=$((CHILDREN * CREDITS))
DATABASE_URL="$url" ./target/release/server migrate >/dev/null
servers=()
for i in 0 1; do
    DATABASE_URL="$url" BIND_ADDR="127.0.0.1:$((PORT + i))" BOOTSTRAP_ADMIN_KEY="$key" \
        BOOTSTRAP_RATE_LIMIT_TIER=unlimited BOOTSTRAP_CREDITS="$total_credits" \
        HTTP_WORKERS="$HTTP_WORKERS" RUST_LOG=warn LOG_FORMAT=json ./target/release/server >"$logs/server-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$((PORT + i))/readyz" && break; sleep 0.1; done
    servers+=("http://127.0.0.1:$((PORT + i))")
done
export ADMIN_KEY="$key"
servers_csv="$(IFS=,; echo "${servers[*]}")"
echo "machine: $(nproc) cores; own PostgreSQL on 127.0.0.1:$pg_port ($pg_dir); 2 server processes, $HTTP_WORKERS HTTP workers each"
./target/release/load setup --servers "$servers_csv" --children "$CHILDREN" --credits "$CREDITS" \
    --connections "$CONNECTIONS" --out "$pg_dir/children.tsv"
psql "$url" -q -c "UPDATE api_keys SET rate_limit_tier = 'unlimited'"

status=0
./target/release/load outage --servers "$servers_csv" --children-file "$pg_dir/children.tsv" \
    --connections "$CONNECTIONS" --duration "$DURATION" --stop-after "$STOP_AFTER" --down-for "$DOWN_FOR" \
    --db-stop "$stop_cmd" --db-start "$start_cmd" --recovery-limit "$RECOVERY_LIMIT" || status=$?

echo
echo "== credit invariants (SQL)"
psql "$url" -X -q -v ON_ERROR_STOP=1 -v granted="$total_credits" -f scripts/credit-invariants.sql || status=1
echo "server logs: $logs/server-{0,1}.log"
exit "$status"
