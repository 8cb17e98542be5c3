#!/usr/bin/env bash
# The test command (README): makes sure PostgreSQL answers (starting a throw-away cluster when
# it is installed but not running), runs every test of the workspace, then a short, bounded
# schemathesis run against the server's own /openapi.json (scripts/schemathesis.sh: fixed seed,
# 20 examples per operation, at most 170 s; it installs schemathesis, pinned, from PyPI when
# missing). Any schemathesis finding fails the command. SKIP_SCHEMATHESIS=1 skips that step.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v pg_isready >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "PostgreSQL is not installed: installing it from Debian's packages."
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi
bash scripts/pg-test-cluster.sh
cargo test --workspace "$@"

if [[ ${SKIP_SCHEMATHESIS:-0} != 1 ]]; then
    echo "== schemathesis (short run, seed ${SCHEMATHESIS_SEED:-1})"
    SEED="${SCHEMATHESIS_SEED:-1}" MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}" \
        TIME_BUDGET="${SCHEMATHESIS_TIME_BUDGET:-170}" bash scripts/schemathesis.sh
fi
