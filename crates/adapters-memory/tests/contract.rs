//! The port-contract suite (crates/store-contract) against the embedded in-memory store: the same
//! cases PostgreSQL passes, each on a fresh `MemoryStore`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use adapters_memory::MemoryStore;
use store_contract::Stores;

async fn memory_stores() -> Stores {
    Stores::new(Arc::new(MemoryStore::new()))
}

store_contract::store_contract_tests!(memory_stores());
