#!/usr/bin/env bash
# Scale: does a deep table cost more per request? Runs the real server (release) on PostgreSQL
# and measures, with wrk, in the same run:
#   - a page of GET /v1/organizations for a partner with 100 children vs one with 100,000;
#   - authentication (GET /v1/whoami) with 100 keys in the table vs with 1,000,000, and the
#     authentication statement alone (pgbench), which isolates the store's cost from HTTP noise.
# Keyset pagination and the unique index on the key handle should make both ratios close to 1.
# Rows are bulk-inserted with SQL (generate_series), not through the API, to keep the run short.
#
#   scripts/scale.sh                 # DURATION=5 seconds per measurement
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-5}"
ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${PORT:-18280}"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
bash scripts/pg-test-cluster.sh >/dev/null
cargo build --release -q -p server

db="scale_$$"
url="${ADMIN_URL%/*}/$db"
psql "$ADMIN_URL" -q -c "CREATE DATABASE $db"
pid=""
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    rm -f "${auth_sql:-}"
}
trap cleanup EXIT

server=./target/release/server
export DATABASE_URL="$url"
"$server" migrate >/dev/null
partner() { # prints "org_id key"
    "$server" create-organization --name "$1" --rate-limit-tier unlimited |
        awk '/^organization/ {org=$2} /admin key/ {key=$NF} END {print org, key}'
}
read -r small_org small_key < <(partner "Small partner")
read -r big_org big_key < <(partner "Big partner")

BIND_ADDR="127.0.0.1:$PORT" HTTP_WORKERS=2 RUST_LOG=warn "$server" >/dev/null &
pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done

children() { # $1 parent org id, $2 how many
    psql "$url" -q -c "INSERT INTO organizations (id, parent_id, name, status, metadata, created_at, updated_at, revision)
        SELECT gen_random_uuid(), '${1#org_}', 'child ' || i, 'active', '{}'::jsonb,
               now() - i * interval '1 second', now() - i * interval '1 second', 1
        FROM generate_series(1, $2) AS i"
}
keys() { # bulk keys numbered $1 to $2, on the big partner
    psql "$url" -q -c "INSERT INTO api_keys (id, organization_id, name, env, handle, secret_hash, scopes, rate_limit_tier, created_at)
        SELECT gen_random_uuid(), '${big_org#org_}', 'bulk', 'live', substr(upper(md5('h' || i)), 1, 16),
               decode(md5('a' || i) || md5('b' || i), 'hex'), '{credits:read}', 'standard', now()
        FROM generate_series($1, $2) AS i"
}
children "$small_org" 100
children "$big_org" 100000

# "p50 p99" in ms for GET $2 with key $1.
measure() {
    wrk -t2 -c8 -d"${DURATION}s" --latency -H "Authorization: Bearer $1" "http://127.0.0.1:$PORT$2" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /Requests\/sec/ { rps = $2 }
        END { printf "%s %.3f %.3f\n", rps, p50, p99 }'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }
# The run (of three) with the median p50: this machine is shared, one run can be unlucky.
median_of_3() {
    for _ in 1 2 3; do measure "$@"; done | sort -k2 -n | sed -n 2p
}
# Bulk inserts leave work behind (autovacuum, a checkpoint): do it now, not during a measurement.
settle() { psql "$url" -q -c "VACUUM ANALYZE" -c "CHECKPOINT"; }
settle

# The small and the big partner are measured alternately, so noise hits both alike.
small_runs=() big_runs=()
for _ in 1 2 3; do
    small_runs+=("$(measure "$small_key" "/v1/organizations?limit=25")")
    big_runs+=("$(measure "$big_key" "/v1/organizations?limit=25")")
done
read -r s_rps s_p50 s_p99 < <(printf '%s\n' "${small_runs[@]}" | sort -k2 -n | sed -n 2p)
read -r b_rps b_p50 b_p99 < <(printf '%s\n' "${big_runs[@]}" | sort -k2 -n | sed -n 2p)
# A deep page: the cursor of the 2,000th page of the big partner.
cursor=""
for _ in $(seq 1 3); do
    cursor=$(curl -s "http://127.0.0.1:$PORT/v1/organizations?limit=200${cursor:+&cursor=$cursor}" -H "Authorization: Bearer $big_key" |
        python3 -c 'import sys, json; print(json.load(sys.stdin)["nextCursor"])')
done
read -r d_rps d_p50 d_p99 < <(median_of_3 "$big_key" "/v1/organizations?limit=25&cursor=$cursor")

keys 3 100 # with the two partners' own keys: 100 in the table
settle
# The authentication statement alone, without HTTP (pgbench, 2 clients, the small key's handle):
# what the store pays per request, away from the HTTP stack's noise.
auth_sql=$(mktemp)
small_handle=$(cut -d_ -f3 <<<"$small_key")
echo "SELECT * FROM api_keys k JOIN organizations o ON o.id = k.organization_id
      LEFT JOIN organizations p ON p.id = o.parent_id WHERE k.handle = '$small_handle';" >"$auth_sql"
auth_query() { # "transactions per second, average latency in ms"
    pgbench -n -c 2 -j 2 -T "$DURATION" -f "$auth_sql" "$url" 2>/dev/null |
        awk '/latency average/ {lat = $4} /^tps/ {tps = $3} END {printf "%s %s\n", tps, lat}'
}
read -r qa_tps qa_lat < <(auth_query)
read -r a_rps a_p50 a_p99 < <(median_of_3 "$small_key" "/v1/whoami")
keys 101 1000000
settle
measure "$small_key" "/v1/whoami" >/dev/null # warm the index into the cache
read -r m_rps m_p50 m_p99 < <(median_of_3 "$small_key" "/v1/whoami")
read -r qm_tps qm_lat < <(auth_query)

echo "machine: $(nproc) cores; wrk -t2 -c8 -d${DURATION}s, median of 3 runs; release server, 2 workers, PostgreSQL"
printf '%-52s %9s %9s %9s\n' measurement "req/s" "p50 ms" "p99 ms"
printf '%-52s %9.0f %9.3f %9.3f\n' "page of children, partner with 100" "$s_rps" "$s_p50" "$s_p99"
printf '%-52s %9.0f %9.3f %9.3f\n' "page of children, partner with 100,000" "$b_rps" "$b_p50" "$b_p99"
printf '%-52s %9.0f %9.3f %9.3f\n' "deep page (after 600 rows) of the 100,000" "$d_rps" "$d_p50" "$d_p99"
printf '%-52s %9.0f %9.3f %9.3f\n' "whoami, 100 keys in the table" "$a_rps" "$a_p50" "$a_p99"
printf '%-52s %9.0f %9.3f %9.3f\n' "whoami, 1,000,000 keys in the table" "$m_rps" "$m_p50" "$m_p99"
printf '%-52s %9.0f %9.3f %9s\n' "auth statement alone (pgbench), 100 keys" "$qa_tps" "$qa_lat" "(mean)"
printf '%-52s %9.0f %9.3f %9s\n' "auth statement alone (pgbench), 1,000,000 keys" "$qm_tps" "$qm_lat" "(mean)"
echo "ratios (p50): 100,000 vs 100 children $(ratio "$b_p50" "$s_p50"); deep vs first page $(ratio "$d_p50" "$b_p50"); 1,000,000 vs 100 keys $(ratio "$m_p50" "$a_p50") (statement alone, mean: $(ratio "$qm_lat" "$qa_lat"))"
