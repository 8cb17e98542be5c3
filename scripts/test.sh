#!/usr/bin/env bash
# The test command (README): makes sure PostgreSQL answers (starting a throw-away cluster when
# it is installed but not running), then runs every test of the workspace.
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
