//! The migrations: each one up, down and up again on a database of its own, and the schema they
//! leave behind is the same either way; concurrent runs are serialized by the advisory lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use adapters_pg::testing::{self, TestDatabase};
use adapters_pg::{run_migrations, PgStore};

#[tokio::test]
async fn every_migration_goes_up_down_and_up_again() {
    let database = TestDatabase::create_empty().await.unwrap();
    let url = database.url();
    let versions = testing::embedded_migration_versions().unwrap();
    assert!(!versions.is_empty());

    let empty = testing::schema_fingerprint(url).await.unwrap();
    let mut applied = Vec::new();
    for version in &versions {
        let before = testing::schema_fingerprint(url).await.unwrap();
        assert_eq!(
            testing::migrate_up_one(url).await.unwrap().as_deref(),
            Some(version.as_str())
        );
        let after_up = testing::schema_fingerprint(url).await.unwrap();
        assert_ne!(before, after_up, "migration {version} changed nothing");
        assert_eq!(&testing::migrate_down_one(url).await.unwrap(), version);
        assert_eq!(
            testing::schema_fingerprint(url).await.unwrap(),
            before,
            "down of {version} does not undo its up"
        );
        assert_eq!(
            testing::migrate_up_one(url).await.unwrap().as_deref(),
            Some(version.as_str())
        );
        assert_eq!(
            testing::schema_fingerprint(url).await.unwrap(),
            after_up,
            "{version} up again differs"
        );
        applied.push(version.clone());
    }
    assert_eq!(testing::migrate_up_one(url).await.unwrap(), None);
    let full = testing::schema_fingerprint(url).await.unwrap();

    // All the way down leaves nothing; all the way up again gives the same schema.
    testing::migrate_down_all(url).await.unwrap();
    assert_eq!(testing::schema_fingerprint(url).await.unwrap(), empty);
    run_migrations(url).await.unwrap();
    assert_eq!(testing::schema_fingerprint(url).await.unwrap(), full);
    assert_eq!(applied, versions);
}

/// The store reports ready only once every migration is applied.
#[tokio::test]
async fn readiness_needs_every_migration() {
    let database = TestDatabase::create_empty().await.unwrap();
    let store = PgStore::connect(database.url(), testing::test_pool_settings())
        .await
        .unwrap();
    assert!(!store.is_ready().await, "ready with no schema");
    testing::migrate_up_one(database.url()).await.unwrap();
    assert!(
        !store.is_ready().await,
        "ready with one migration of several"
    );
    run_migrations(database.url()).await.unwrap();
    assert!(store.is_ready().await);
    testing::migrate_down_one(database.url()).await.unwrap();
    assert!(
        !store.is_ready().await,
        "ready after a migration was reverted"
    );
}

/// Several processes starting at once: all succeed, each migration is applied once. Runs on a
/// current-thread runtime on purpose (the async harness would panic there).
#[tokio::test]
async fn concurrent_runs_on_a_current_thread_runtime_all_succeed() {
    let database = TestDatabase::create_empty().await.unwrap();
    let url = database.url().to_owned();
    let runs = (0..4).map(|_| run_migrations(&url));
    for outcome in futures_util::future::join_all(runs).await {
        outcome.unwrap();
    }
    let store = PgStore::connect(&url, testing::test_pool_settings())
        .await
        .unwrap();
    assert!(store.is_ready().await);
    run_migrations(&url).await.unwrap();
}

/// `run_migrations` waits for another process holding the migration lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_wait_for_the_advisory_lock() {
    let database = TestDatabase::create_empty().await.unwrap();
    let url = database.url().to_owned();
    let hold = Duration::from_millis(1_500);
    let holder = tokio::spawn({
        let url = url.clone();
        async move { testing::hold_migration_lock(&url, hold).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    run_migrations(&url).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "ran while another process held the lock ({:?})",
        started.elapsed()
    );
    holder.await.unwrap().unwrap();
}
