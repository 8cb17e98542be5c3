//! The HTTP API suite: a real server on a random port, driven over HTTP with reqwest. Every test
//! runs once per store (see `store_tests!`), each on a fresh store of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod acting;
mod api_keys;
mod audit_log;
mod credits;
mod cross_process;
mod errors;
mod faults;
mod hostile_bodies;
mod hostile_cursors;
mod idempotency;
mod key_lifecycle;
mod kill_switch;
mod log_hygiene;
mod organizations;
mod outage;
mod pagination;
mod processes;
mod races;
mod rate_limits;
mod readme_commands;
mod receiver;
mod reservations;
mod security_matrix;
mod webhook_delivery;
mod webhook_workers;
mod webhooks_api;
