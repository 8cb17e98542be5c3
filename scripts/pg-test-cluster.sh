#!/usr/bin/env bash
# Makes sure a PostgreSQL answers on 127.0.0.1:$PGTEST_PORT (default 5432) for the adapters-pg
# tests, which connect to postgres://postgres@127.0.0.1:5432/postgres unless
# TEST_DATABASE_ADMIN_URL says otherwise.
#
# - Something already answers there: nothing is done.
# - Otherwise a throw-away cluster is created (once) with initdb — trust auth, superuser
#   `postgres`, fsync off, listening on 127.0.0.1 only — and started with pg_ctl. As root, both
#   run as the `postgres` user.
# - Idempotent: run it as often as you like. `scripts/pg-test-cluster.sh stop` stops a cluster it
#   started.
#
# Environment: PGTEST_EXTRA_OPTIONS (more `-c name=value` for the server; a later one wins),
# PGTEST_PORT (5432), PGTEST_DIR (the repo's .pgtest/, or /tmp/pgtest-cluster when
# run as root, since the postgres user may not be able to enter the work tree), PG_BIN
# (/usr/lib/postgresql/15/bin, else the newest installed).
set -Eeuo pipefail

port="${PGTEST_PORT:-5432}"
host=127.0.0.1
# PostgreSQL 15 by default; else the newest installed version.
bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [[ -z ${PG_BIN:-} && ! -x $bin/initdb ]]; then
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n $newest ]] && bin="$newest"
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $(id -u) -eq 0 ]]; then
    base="${PGTEST_DIR:-/tmp/pgtest-cluster}"
else
    base="${PGTEST_DIR:-$repo/.pgtest}"
fi
data="$base/data"
log="$base/postgres.log"

# Runs a PostgreSQL tool, as the postgres user when we are root (initdb and postgres refuse root).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ready() {
    local isready="$bin/pg_isready"
    [[ -x $isready ]] || isready="$(command -v pg_isready || true)"
    if [[ -n $isready ]]; then
        "$isready" -q -h "$host" -p "$port"
    else
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

if [[ ${1:-} == stop ]]; then
    if [[ -f $data/postmaster.pid ]]; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop
        echo "stopped the test cluster in $data"
    else
        echo "no test cluster of ours is running in $data"
    fi
    exit 0
fi

if ready; then
    echo "PostgreSQL already answers on $host:$port: nothing to do."
    exit 0
fi

if [[ ! -x $bin/initdb ]]; then
    echo "no PostgreSQL binaries in $bin (apt-get install postgresql-15, or set PG_BIN)" >&2
    exit 1
fi

mkdir -p "$base"
if [[ $(id -u) -eq 0 ]]; then
    chown postgres:postgres "$base"
fi

if [[ ! -f $data/PG_VERSION ]]; then
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$base/initdb.log"
    echo "created a throw-away cluster in $data (trust auth, user postgres)"
else
    echo "reusing the cluster in $data"
fi

as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
    "-c listen_addresses=$host -p $port -k $base -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${PGTEST_EXTRA_OPTIONS:-}"

for _ in $(seq 1 60); do
    if ready; then
        echo "started PostgreSQL on $host:$port (log: $log)"
        exit 0
    fi
    sleep 0.5
done
echo "PostgreSQL did not come up on $host:$port; see $log" >&2
exit 1
