#!/usr/bin/env bash
# Schemathesis against the real server's own description (GET /openapi.json): a short, bounded
# property-based run of every documented operation with the bootstrap admin key, checking that
# no request gets a 5xx and that every response conforms to the schema (`--checks all` by
# default). Exits non-zero when schemathesis reports any failure, or when the run overruns its
# time budget.
#
# - Installs schemathesis (pinned) into .venv-schemathesis/ at the repository root (git-ignored),
#   once; needs only python3 with venv and PyPI.
# - Configuration: scripts/schemathesis/schemathesis.toml (402 BILLING_EXHAUSTED is a state-dependent
#   answer, not a rejection of the request's shape) and scripts/schemathesis/hooks.py (generated
#   cases send no `cursor`: only the server can issue one). docs/decisions.md says why.
# - Builds and starts target/debug/server on a free port with the embedded store (DATABASE_URL is
#   ignored unless SCHEMATHESIS_DATABASE_URL is set), a freshly generated BOOTSTRAP_ADMIN_KEY and
#   RUST_LOG=warn; the server is killed on exit, whatever happens.
#
# Environment (all optional):
#   MAX_EXAMPLES             test cases per operation and phase (default 20)
#   CHECKS                   schemathesis checks (default "all")
#   EXCLUDE_CHECKS           checks to skip (default "use_after_free": DELETE of an organization
#                            archives it, and API.md §4.2/§4.9 keep an archived child readable,
#                            so a 200 after DELETE is the contract; set it empty to run it anyway)
#   OWN_KEY_OPERATIONS       "1" to also run POST /v1/api-keys/{keyId}/kill and …/rotate (default:
#                            excluded — schemathesis finds the id of the very key it authenticates
#                            with and kills or rotates it, as API.md §5.4 allows, after which every
#                            request is 503 KILL_SWITCH or 401 and the rest of the run is noise)
#   TIME_BUDGET              seconds the schemathesis run may take before it is stopped (300)
#   SEED                     schemathesis seed, for a reproducible run (default: random)
#   PHASES                   schemathesis phases (default "examples,coverage,fuzzing"; the
#                            stateful phase infers links from response fields by name and puts a
#                            key's `id` into `orgId`, which the server rightly refuses with 422 —
#                            add it with PHASES=examples,coverage,fuzzing,stateful to look anyway)
#   SCHEMATHESIS_VERSION     the version to install (default 4.32.5)
#   SCHEMATHESIS_DATABASE_URL  run the server on this PostgreSQL database instead
# The bootstrap organization gets BOOTSTRAP_CREDITS=1000000000, so reservations and allocations
# reach their 201s rather than 402 on an empty wallet.
# Arguments after the script name are passed to `schemathesis run` as they are.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="${SCHEMATHESIS_VERSION:-4.32.5}"
max_examples="${MAX_EXAMPLES:-20}"
checks="${CHECKS:-all}"
time_budget="${TIME_BUDGET:-300}"
exclude_checks="${EXCLUDE_CHECKS-use_after_free}"
venv="$PWD/.venv-schemathesis"
report_dir="$PWD/target/schemathesis"

# 1. schemathesis, pinned, in a venv of its own.
if [[ ! -x $venv/bin/schemathesis ]] || [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *"$version"* ]]; then
    echo "== installing schemathesis $version into .venv-schemathesis/"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian splits venv out of python3; install it when we can.
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

# 2. The server binary.
echo "== cargo build -p server"
cargo build --quiet -p server

# 3. A free port, and a bootstrap admin key in the API.md §2.1 format.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
admin_key="$(python3 -c '
import base64, secrets
crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
handle = "".join(secrets.choice(crockford) for _ in range(16))
secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
print(f"lp_live_{handle}_{secret}")')"
base="http://127.0.0.1:$port"
mkdir -p "$report_dir"
server_log="$report_dir/server.log"

# 4. Start the server; kill it on exit.
server_pid=""
cleanup() {
    local status=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT INT TERM

echo "== starting target/debug/server on $base (log: target/schemathesis/server.log)"
env -u DATABASE_URL \
    ${SCHEMATHESIS_DATABASE_URL:+DATABASE_URL="$SCHEMATHESIS_DATABASE_URL"} \
    BIND_ADDR="127.0.0.1:$port" \
    BOOTSTRAP_ADMIN_KEY="$admin_key" \
    BOOTSTRAP_CREDITS=1000000000 \
    LOG_FORMAT=json \
    RUST_LOG=warn \
    HTTP_WORKERS=2 \
    target/debug/server >"$server_log" 2>&1 &
server_pid=$!

for _ in $(seq 300); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server exited at start-up:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# 5. The run: bounded examples, bounded time.
args=(
    run "$base/openapi.json"
    --checks "$checks"
    --max-examples "$max_examples"
    --header "Authorization: Bearer $admin_key"
    --workers 1
    --request-timeout 10
    --no-color
    --report junit
    --report-dir "$report_dir"
)
args+=(--phases "${PHASES:-examples,coverage,fuzzing}")
[[ -n $exclude_checks ]] && args+=(--exclude-checks "$exclude_checks")
[[ ${OWN_KEY_OPERATIONS:-0} == 1 ]] || args+=(--exclude-path-regex '^/v1/api-keys/[^/]+/(kill|rotate)$')
[[ -n ${SEED:-} ]] && args+=(--seed "$SEED")

echo "== schemathesis ${args[*]/$admin_key/<admin key>} $*"
set +e
# From inside target/schemathesis/, where schemathesis keeps its example cache (.schemathesis/).
started=$SECONDS
config_dir="$PWD/scripts/schemathesis"
(cd "$report_dir" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$config_dir" \
    timeout --signal=INT --kill-after=15 "$time_budget" \
    "$venv/bin/schemathesis" --config-file "$config_dir/schemathesis.toml" "${args[@]}" "$@")
status=$?
set -e
echo "== schemathesis took $((SECONDS - started)) s (exit $status)"
if [[ $status -eq 124 ]]; then
    echo "schemathesis overran its time budget of ${time_budget}s" >&2
fi
if [[ $status -ne 0 ]]; then
    echo "== schemathesis failed (exit $status); server errors logged:" >&2
    grep -E '"level":"(ERROR|WARN)"' "$server_log" | tail -n 20 >&2 || true
fi
exit "$status"
