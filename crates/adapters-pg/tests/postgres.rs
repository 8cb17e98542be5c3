//! What only the PostgreSQL store can get wrong: reachability and timeouts, the database's own
//! constraints, rows the domain would not accept, and several processes on one database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters_pg::testing::{self, TestDatabase};
use adapters_pg::{run_migrations, PgStore, PoolSettings};
use domain::audit::{Actor, AuditEvent, AuditEventId, AuditEventType, AuditFilter};
use domain::ports::{ApiKeyStore, Archive, AuditLog, OrganizationStore, StoreError};
use domain::trail::Trail;
use store_contract::fixtures::{at, child_of, key_of, top_level};
use store_contract::{cases, Stores};

fn quick_settings() -> PoolSettings {
    PoolSettings {
        max_size: 2,
        wait_timeout: Duration::from_secs(1),
        create_timeout: Duration::from_secs(1),
        recycle_timeout: Duration::from_secs(1),
    }
}

/// A TCP port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_seconds() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nothing", closed_port());
    let started = Instant::now();
    let refused = PgStore::connect(&url, quick_settings()).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );

    let lazy = PgStore::connect_lazy(&url, quick_settings()).unwrap();
    let found = OrganizationStore::find(&lazy, store_contract::fixtures::organization_id()).await;
    assert!(
        matches!(found, Err(StoreError::Unavailable(_))),
        "{found:?}"
    );
    assert!(!lazy.is_ready().await);

    let migrated = run_migrations(&url).await;
    assert!(
        matches!(migrated, Err(StoreError::Unavailable(_))),
        "{migrated:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A server that accepts connections and never answers: the create timeout, not a hang.
#[tokio::test]
async fn a_silent_database_is_unavailable_after_the_create_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let store = PgStore::connect_lazy(&url, quick_settings()).unwrap();
    let started = Instant::now();
    let count = store
        .count_active(
            store_contract::fixtures::organization_id(),
            store_contract::fixtures::later(),
        )
        .await;
    assert!(
        matches!(count, Err(StoreError::Unavailable(_))),
        "{count:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}

#[tokio::test]
async fn a_pool_smaller_than_two_is_refused() {
    let settings = PoolSettings {
        max_size: 1,
        ..PoolSettings::default()
    };
    assert!(PoolSettings::default().max_size >= PoolSettings::MIN_SIZE);
    let refused = PgStore::connect_lazy(&testing::admin_url(), settings);
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_migrated_database_is_ready() {
    let database = TestDatabase::create().await.unwrap();
    assert!(database.store().is_ready().await);
}

/// One level deep, enforced by the database too: a grandchild is refused (as `Internal`: the
/// domain never asks for one), and so is a child of a missing parent.
#[tokio::test]
async fn the_database_refuses_grandchildren_and_orphans() {
    let database = TestDatabase::create().await.unwrap();
    let store = database.store();
    let parent = top_level(at(0));
    let child = child_of(&parent, at(1));
    OrganizationStore::insert(&store, &parent, &Trail::none(), None)
        .await
        .unwrap();
    OrganizationStore::insert(&store, &child, &Trail::none(), None)
        .await
        .unwrap();
    let grandchild = child_of(&child, at(2));
    let refused = OrganizationStore::insert(&store, &grandchild, &Trail::none(), None).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
    let orphan = child_of(&top_level(at(3)), at(4));
    let refused = OrganizationStore::insert(&store, &orphan, &Trail::none(), None).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
    assert_eq!(
        OrganizationStore::find(&store, grandchild.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        OrganizationStore::find(&store, orphan.id).await.unwrap(),
        None
    );
}

/// A row the domain would not accept (written by hand, say) is an `Internal` error, not a panic
/// and not a made-up value.
#[tokio::test]
async fn rows_the_domain_rejects_are_internal_errors() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let database = TestDatabase::create().await.unwrap();
    let store = database.store();
    let org = top_level(at(0));
    OrganizationStore::insert(&store, &org, &Trail::none(), None)
        .await
        .unwrap();
    let key = key_of(&org, at(1));
    ApiKeyStore::insert(&store, &key, &Trail::none(), None)
        .await
        .unwrap();
    let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
    conn.batch_execute(&format!(
        "UPDATE api_keys SET scopes = ARRAY['credits:read', 'root:everything'] WHERE id = '{}'",
        key.id.as_uuid()
    ))
    .await
    .unwrap();
    let found = ApiKeyStore::find(&store, key.id).await;
    assert!(matches!(found, Err(StoreError::Internal(_))), "{found:?}");
    let credentials = store.find_credentials(&key.handle).await;
    assert!(
        matches!(credentials, Err(StoreError::Internal(_))),
        "{credentials:?}"
    );
}

/// Two pools on one database stand for two server processes: the racing contract cases hold
/// across them too.
async fn two_processes() -> Stores {
    let database = TestDatabase::create().await.unwrap();
    let first = database.store();
    let second = PgStore::connect(database.url(), testing::test_pool_settings())
        .await
        .unwrap();
    Stores::across(Arc::new(first), Arc::new(second), database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_racing_key_inserts_from_another_process() {
    cases::archive_racing_key_inserts_leaves_no_live_key(&two_processes().await).await;
}

#[tokio::test]
async fn another_process_sees_a_suspension_at_once() {
    cases::find_credentials_reads_the_current_state(&two_processes().await).await;
}

/// Connections the server closed (a restart, a failover, an operator's pg_terminate_backend) are
/// replaced by the pool's check before they are handed out: the next request does not fail.
#[tokio::test]
async fn connections_closed_by_the_server_are_replaced() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let database = TestDatabase::create().await.unwrap();
    let store = database.store();
    let org = top_level(at(0));
    OrganizationStore::insert(&store, &org, &Trail::none(), None)
        .await
        .unwrap();
    // Warm the pool with a couple of connections.
    let (a, b) = tokio::join!(
        OrganizationStore::find(&store, org.id),
        store.count_active(org.id, store_contract::fixtures::later())
    );
    a.unwrap();
    b.unwrap();

    let mut admin = AsyncPgConnection::establish(&testing::admin_url())
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            database.name()
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(
        OrganizationStore::find(&store, org.id).await.unwrap(),
        Some(org.clone())
    );
    assert_eq!(
        store
            .count_active(org.id, store_contract::fixtures::later())
            .await
            .unwrap(),
        0
    );
    assert!(store.is_ready().await);
}

/// A kill-switch refusal by `key` at `at`, as the gate would audit it.
fn refusal(key: &domain::api_key::ApiKey, at: domain::Timestamp, n: u8) -> AuditEvent {
    let mut random = [0u8; 10];
    random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
    random[0] ^= n;
    AuditEvent {
        id: AuditEventId::new(at, random),
        event_type: AuditEventType::KillSwitchRefused,
        occurred_at: at,
        request_id: Some(format!("req_{n}")),
        organization_id: key.organization_id,
        actor: Actor::ApiKey {
            api_key_id: key.id,
            organization_id: key.organization_id,
        },
        data: r#"{"scope":"organization"}"#.to_owned(),
    }
}

/// The database refuses to change or delete audit rows, and an archive keeps them.
#[tokio::test]
async fn the_audit_log_is_append_only_and_outlives_an_archive() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let database = TestDatabase::create().await.unwrap();
    let store = database.store();
    let parent = top_level(at(0));
    let child = child_of(&parent, at(1));
    OrganizationStore::insert(&store, &parent, &Trail::none(), None)
        .await
        .unwrap();
    OrganizationStore::insert(&store, &child, &Trail::none(), None)
        .await
        .unwrap();
    let key = key_of(&child, at(2));
    let event = refusal(&key, at(3), 1);
    ApiKeyStore::insert(&store, &key, &Trail::none().with_audit(event.clone()), None)
        .await
        .unwrap();

    let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
    for statement in [
        "UPDATE audit_events SET data = '{}'",
        "DELETE FROM audit_events",
    ] {
        assert!(
            conn.batch_execute(statement).await.is_err(),
            "{statement} was allowed"
        );
    }
    let archived = store_contract::fixtures::archived(&child, at(4));
    let outcome = OrganizationStore::archive(
        &store,
        &archived,
        child.revision,
        store_contract::fixtures::reclaim(),
        &Trail::none(),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Archive::Applied { .. }), "{outcome:?}");
    let log = AuditLog::list(
        &store,
        child.id,
        AuditFilter::default(),
        store_contract::fixtures::first_page(10),
    )
    .await
    .unwrap();
    assert_eq!(log, vec![event]);
}

/// Refusals of one key racing on two processes within the window write one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_racing_on_two_processes_are_audited_once() {
    let database = TestDatabase::create().await.unwrap();
    let first = Arc::new(database.store());
    let second = Arc::new(
        PgStore::connect(database.url(), testing::test_pool_settings())
            .await
            .unwrap(),
    );
    let org = top_level(at(0));
    OrganizationStore::insert(&*first, &org, &Trail::none(), None)
        .await
        .unwrap();
    let key = key_of(&org, at(1));
    ApiKeyStore::insert(&*first, &key, &Trail::none(), None)
        .await
        .unwrap();
    let window = domain::audit::KILL_SWITCH_AUDIT_WINDOW;
    let now = at(60_000_000);
    let races = (0..8u8).map(|n| {
        let store = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let event = refusal(&key, now, n);
        tokio::spawn(async move { store.record_refusal(&event, now.plus(-window)).await })
    });
    let mut written = 0;
    for race in futures_util::future::join_all(races).await {
        if race.unwrap().unwrap() {
            written += 1;
        }
    }
    assert_eq!(written, 1);
    // Within the window: refused; past it: written.
    let soon = now.plus(time::Duration::seconds(59));
    assert!(!first
        .record_refusal(&refusal(&key, soon, 9), soon.plus(-window))
        .await
        .unwrap());
    let after = now.plus(time::Duration::seconds(61));
    assert!(second
        .record_refusal(&refusal(&key, after, 10), after.plus(-window))
        .await
        .unwrap());
    let log = AuditLog::list(
        &*first,
        org.id,
        AuditFilter::default(),
        store_contract::fixtures::first_page(10),
    )
    .await
    .unwrap();
    assert_eq!(log.len(), 2);
}

/// Held jobs are parked by the claims that meet them and unparked, in batches, after resume:
/// none is lost or claimed while held, however many there are.
#[tokio::test]
async fn many_held_jobs_are_parked_and_all_run_after_resume() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    use domain::organization::{Organization, OrganizationStatus};
    use domain::ports::JobQueue;

    let database = TestDatabase::create().await.unwrap();
    let store = database.store();
    let parent = top_level(at(0));
    let child = child_of(&parent, at(1));
    for org in [&parent, &child] {
        OrganizationStore::insert(&store, org, &Trail::none(), None)
            .await
            .unwrap();
    }
    const HELD: i64 = 25_000;
    let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
    diesel::sql_query(
        "INSERT INTO jobs (id, organization_id, kind, payload, run_at) \
         SELECT gen_random_uuid(), $1, 'test.held', n::text, $2 FROM generate_series(1, $3) n",
    )
    .bind::<diesel::sql_types::Uuid, _>(child.id.as_uuid())
    .bind::<diesel::sql_types::Timestamptz, _>(at(2).as_offset_datetime())
    .bind::<diesel::sql_types::BigInt, _>(HELD)
    .execute(&mut conn)
    .await
    .unwrap();
    let suspended = store_contract::fixtures::suspended(&child, at(3));
    OrganizationStore::update(&store, &suspended, child.revision, &Trail::none(), None)
        .await
        .unwrap();
    let kinds = || vec!["test.held".to_owned()];
    let claim = |now: i64| {
        let store = &store;
        async move {
            JobQueue::claim(store, kinds(), at(now), at(now + 600_000_000), 1_000)
                .await
                .unwrap()
        }
    };
    for i in 0..8 {
        assert!(
            claim(10 + i).await.is_empty(),
            "held jobs are never claimed"
        );
    }
    let parked: i64 = count(&mut conn, "SELECT count(*) AS n FROM jobs WHERE parked").await;
    assert_eq!(parked, HELD, "the claims parked every held job");

    let resumed = Organization {
        status: OrganizationStatus::Active,
        updated_at: at(20),
        revision: suspended.revision.next(),
        ..suspended.clone()
    };
    OrganizationStore::update(&store, &resumed, suspended.revision, &Trail::none(), None)
        .await
        .unwrap();
    let mut ran = 0;
    for i in 0..100 {
        let leases = claim(30 + i).await;
        if leases.is_empty() && ran > 0 {
            break;
        }
        // Claimed jobs stay leased (for 10 min of this clock), so each is counted once.
        ran += leases.len();
    }
    assert_eq!(ran as i64, HELD, "every held job ran after resume");
    let left: i64 = count(&mut conn, "SELECT count(*) AS n FROM parked_organizations").await;
    assert_eq!(left, 0);
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}
