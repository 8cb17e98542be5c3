#!/usr/bin/env bash
# Load benchmark of the real server on PostgreSQL, beside a baseline measured in the same run:
# a minimal actix-web handler doing one primary-key SELECT through the same pool (crates/bench).
# Prints throughput and p50/p99 latency per scenario, and each as a ratio of the baseline's.
#
#   scripts/bench.sh            # 10 s per scenario
#   DURATION=30 CONNECTIONS=32 scripts/bench.sh
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"
ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v wrk >/dev/null; then
    echo "installing wrk (the load generator) from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
bash scripts/pg-test-cluster.sh >/dev/null
cargo build --release -q -p server -p bench

db="bench_$$"
url="${ADMIN_URL%/*}/$db"
psql "$ADMIN_URL" -q -c "CREATE DATABASE $db"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

key="$(python3 - <<'PY'
import base64, secrets
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
handle = "".join(secrets.choice(alphabet) for _ in range(16))
secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
print(f"lp_live_{handle}_{secret}")
PY
)"
# The bootstrap key on the `unlimited` tier: the benchmark measures the service, not its limits.
DATABASE_URL="$url" BIND_ADDR=127.0.0.1:18180 BOOTSTRAP_ADMIN_KEY="$key" BOOTSTRAP_RATE_LIMIT_TIER=unlimited \
    HTTP_WORKERS=2 RUST_LOG=warn ./target/release/server >/dev/null &
pids+=($!)
DATABASE_URL="$url" BIND_ADDR=127.0.0.1:18181 HTTP_WORKERS=2 ./target/release/baseline &
pids+=($!)
for port in 18180 18181; do  # wait until each answers anything at all
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

api=http://127.0.0.1:18180
children=()
for i in $(seq 1 32); do
    children+=("$(curl -sf -X POST "$api/v1/organizations" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d "{\"name\": \"bench child $i\"}" |
        python3 -c 'import sys, json; print(json.load(sys.stdin)["id"])')")
done
child="${children[0]}"

# wrk's report → "requests_per_sec p50_ms p99_ms non_2xx"
run() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %.3f %.3f %d\n", rps, p50, p99, bad }'
}

echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per scenario; server and baseline: 2 workers, pool 10"
read -r b_rps b_p50 b_p99 b_bad < <(run "http://127.0.0.1:18181/baseline/$child")
read -r g_rps g_p50 g_p99 g_bad < <(run -H "Authorization: Bearer $key" "$api/v1/organizations/$child")
read -r s_rps s_p50 s_p99 s_bad < <(CHILDREN="${children[*]}" run -H "Authorization: Bearer $key" -s scripts/bench/suspend_resume.lua "$api")

printf '\n%-38s %10s %9s %9s %7s   %s\n' scenario "req/s" "p50 ms" "p99 ms" "non-2xx" "ratio to baseline (req/s, p50, p99)"
row() { printf '%-38s %10.0f %9.3f %9.3f %7d   %s\n' "$1" "$2" "$3" "$4" "$5" "$6"; }
ratio() { python3 -c "print(f'{$1/$4:.2f}x, {$2/$5:.2f}x, {$3/$6:.2f}x')"; }
row "baseline: one PK SELECT" "$b_rps" "$b_p50" "$b_p99" "$b_bad" "1.00x, 1.00x, 1.00x"
row "GET /v1/organizations/:orgId" "$g_rps" "$g_p50" "$g_p99" "$g_bad" "$(ratio "$g_rps" "$g_p50" "$g_p99" "$b_rps" "$b_p50" "$b_p99")"
row "POST suspend / resume (alternating)" "$s_rps" "$s_p50" "$s_p99" "$s_bad" "$(ratio "$s_rps" "$s_p50" "$s_p99" "$b_rps" "$b_p50" "$b_p99")"
