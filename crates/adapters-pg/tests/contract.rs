//! The port-contract suite against `PgStore`, each case on a fresh database of its own.
//! Needs the test cluster: `scripts/pg-test-cluster.sh` (or `TEST_DATABASE_ADMIN_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use adapters_pg::testing::TestDatabase;
use store_contract::Stores;

async fn pg_stores() -> Stores {
    let database = TestDatabase::create()
        .await
        .expect("a test database (is the cluster up? scripts/pg-test-cluster.sh)");
    Stores::with_guard(Arc::new(database.store()), database)
}

store_contract::store_contract_tests!(pg_stores());
