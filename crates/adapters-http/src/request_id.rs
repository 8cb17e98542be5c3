//! Request ids (`req_<ULID>`, API.md §1.2): minted by the gate for every request, echoed in the
//! `X-Request-Id` header and in every error body.

use std::future::Future;

tokio::task_local! {
    static CURRENT: String;
}

pub fn mint() -> String {
    format!("req_{}", ulid::Ulid::new())
}

/// Runs `future` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The id of the request being served. Error bodies are rendered inside the request's scope, so
/// this is always set there; outside one, a fresh id at least keeps the body well-formed.
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| mint())
}
