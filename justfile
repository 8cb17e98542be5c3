# Recipes are plain cargo commands, so CI and newcomers can run them without `just`
# (install it with `cargo install just`).
set shell := ["bash", "-Eeuo", "pipefail", "-c"]

_default:
    @just --list

# Run the server on 127.0.0.1:8080 with the embedded store (set DATABASE_URL for PostgreSQL).
run:
    cargo run -p server

# Every test, starting a throw-away PostgreSQL if none answers on 127.0.0.1:5432, then a short
# schemathesis run (SKIP_SCHEMATHESIS=1 to skip it).
test:
    ./scripts/test.sh

# Clippy with warnings as errors, and the format check.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# What CI runs.
ci:
    bash .ci/run

# Load benchmark: the real server on PostgreSQL vs a one-SELECT baseline, with wrk (DURATION=10).
bench:
    ./scripts/bench.sh

# Scale: a page with 100 vs 100,000 children, authentication with 100 vs 1,000,000 keys (and the authentication statement alone, through pgbench).
scale:
    ./scripts/scale.sh

# Load: 1,000 children, two server processes on PostgreSQL, a mixed workload with the kill switch
# under load, per-route p50/p99/p99.9 and ratios to the one-SELECT baseline (DURATION=20).
bench-http:
    ./scripts/load.sh

# PostgreSQL (a cluster of its own) stopped and started again under load: only 503 UNAVAILABLE
# while it is down, full service after, credit invariants in SQL.
faults:
    ./scripts/faults.sh

# Schemathesis against the server's own /openapi.json (SEED, MAX_EXAMPLES, PHASES).
schemathesis:
    ./scripts/schemathesis.sh
