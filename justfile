# Recipes are plain cargo commands, so CI and newcomers can run them without `just`
# (install it with `cargo install just`).
set shell := ["bash", "-Eeuo", "pipefail", "-c"]

_default:
    @just --list

# Run the server on 127.0.0.1:8080 with the embedded store (set DATABASE_URL for PostgreSQL).
run:
    cargo run -p server

# Every test, starting a throw-away PostgreSQL if none answers on 127.0.0.1:5432.
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

# Scale: a page with 100 vs 100,000 children, authentication with few vs 1,000,000 keys.
scale:
    ./scripts/scale.sh
