//! Rotation with its grace window, kill, in-place rotation, `lastUsedAt` (API.md §5).

use futures_util::future::join_all;
use serde_json::json;

use crate::store_tests;
use crate::support::{assert_z_time, Store, TestApp};

store_tests!(
    a_rotated_child_key_works_until_grace_until_then_401,
    rotating_a_superseded_or_revoked_key_is_a_conflict,
    a_killed_key_gets_kill_switch_scope_key_while_others_work,
    in_place_rotation_refuses_the_old_secret_at_once,
    own_keys_are_listed_and_guarded_by_scope,
    last_used_at_is_recorded_without_a_write_per_request,
);

async fn a_rotated_child_key_works_until_grace_until_then_401(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (old_id, old_secret) = app.mint_key(&child, &["keys:read", "credits:read"]).await;
    let rotated = app
        .post_empty(
            &format!("/v1/organizations/{child}/api-keys/{old_id}/rotate"),
            &app.admin_key,
        )
        .await;
    let body = rotated.assert_ok(201).clone();
    let (new, previous) = (&body["apiKey"], &body["previous"]);
    let new_secret = body["secret"].as_str().unwrap();
    assert_ne!(new["id"], previous["id"]);
    assert_eq!(new["name"], previous["name"]);
    assert_eq!(new["scopes"], json!(["keys:read", "credits:read"]));
    assert_eq!(
        (new["env"].clone(), new["rateLimitTier"].clone()),
        (previous["env"].clone(), previous["rateLimitTier"].clone())
    );
    assert_eq!(previous["supersededBy"], new["id"]);
    assert_eq!(previous["status"], "active");
    assert_z_time(&previous["graceUntil"]);
    assert_z_time(&previous["rotatedAt"]);

    // 24 h of grace, to the microsecond: just before, the old key works; at the end, 401.
    app.get("/v1/whoami", &old_secret).await.assert_ok(200);
    app.clock
        .advance(time::Duration::hours(24) - time::Duration::seconds(2));
    app.get("/v1/whoami", &old_secret).await.assert_ok(200);
    app.clock.advance(time::Duration::seconds(3));
    app.get("/v1/whoami", &old_secret)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    app.get("/v1/whoami", new_secret).await.assert_ok(200);

    let listed = app
        .get(
            &format!("/v1/organizations/{child}/api-keys"),
            &app.admin_key,
        )
        .await;
    let old = listed.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old_id)
        .unwrap()
        .clone();
    assert_eq!(old["status"], "revoked");
    assert_eq!(
        old["revokedAt"], old["graceUntil"],
        "revoked exactly when the grace ended"
    );
    let got = app
        .get(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await;
    assert_eq!(got.assert_ok(200)["summary"]["activeApiKeys"], 1);
}

async fn rotating_a_superseded_or_revoked_key_is_a_conflict(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (key, _) = app.mint_key(&child, &["*"]).await;
    let rotate = format!("/v1/organizations/{child}/api-keys/{key}/rotate");
    app.post_empty(&rotate, &app.admin_key).await.assert_ok(201);
    let again = app.post_empty(&rotate, &app.admin_key).await;
    assert_eq!(again.assert_error(409, "CONFLICT")["status"], "superseded");

    let (other, _) = app.mint_key(&child, &["*"]).await;
    app.delete(
        &format!("/v1/organizations/{child}/api-keys/{other}"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
    let revoked = app
        .post_empty(
            &format!("/v1/organizations/{child}/api-keys/{other}/rotate"),
            &app.admin_key,
        )
        .await;
    assert_eq!(revoked.assert_error(409, "CONFLICT")["status"], "revoked");

    let sibling = app.create_child("Sibling").await;
    app.post_empty(
        &format!("/v1/organizations/{sibling}/api-keys/{key}/rotate"),
        &app.admin_key,
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn a_killed_key_gets_kill_switch_scope_key_while_others_work(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (leaked, leaked_secret) = app.mint_key(&child, &["credits:read"]).await;
    let (_, operator_secret) = app.mint_key(&child, &["keys:write", "keys:read"]).await;
    let killed = app
        .post_empty(&format!("/v1/api-keys/{leaked}/kill"), &operator_secret)
        .await;
    let body = killed.assert_ok(200).clone();
    assert_eq!(body["killed"], true);
    assert_eq!(body["apiKey"]["status"], "revoked");
    assert_z_time(&body["apiKey"]["revokedAt"]);

    let refused = app.get("/v1/whoami", &leaked_secret).await;
    let details = refused.assert_error(503, "KILL_SWITCH");
    assert_eq!(details["scope"], "key");
    assert_eq!(details["apiKeyId"], leaked);
    assert_eq!(details["organizationId"], child);
    app.get("/v1/whoami", &operator_secret).await.assert_ok(200);
    // Idempotent.
    let again = app
        .post_empty(&format!("/v1/api-keys/{leaked}/kill"), &operator_secret)
        .await;
    assert_eq!(
        again.assert_ok(200)["apiKey"]["revokedAt"],
        body["apiKey"]["revokedAt"]
    );
    // Only keys of the same organization.
    let other = app.create_child("Other").await;
    let (foreign, _) = app.mint_key(&other, &["*"]).await;
    app.post_empty(&format!("/v1/api-keys/{foreign}/kill"), &operator_secret)
        .await
        .assert_error(404, "NOT_FOUND");
    // And it takes keys:write.
    app.post_empty(
        &format!("/v1/api-keys/{leaked}/kill"),
        &app.mint_key(&child, &["keys:read"]).await.1,
    )
    .await
    .assert_error(403, "FORBIDDEN_SCOPE");
}

async fn in_place_rotation_refuses_the_old_secret_at_once(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (id, old_secret) = app.mint_key(&child, &["keys:write"]).await;
    let rotated = app
        .post_empty(&format!("/v1/api-keys/{id}/rotate"), &old_secret)
        .await;
    let body = rotated.assert_ok(200).clone();
    assert_eq!(body["apiKey"]["id"], id, "same id");
    let new_secret = body["secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    assert!(new_secret.starts_with(body["apiKey"]["prefix"].as_str().unwrap()));
    assert_z_time(&body["apiKey"]["rotatedAt"]);
    app.get("/v1/whoami", &old_secret)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let whoami = app.get("/v1/whoami", new_secret).await;
    assert_eq!(whoami.assert_ok(200)["apiKeyId"], id);
}

async fn own_keys_are_listed_and_guarded_by_scope(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (reader, reader_secret) = app.mint_key(&child, &["keys:read"]).await;
    let (_, no_keys_secret) = app.mint_key(&child, &["credits:read"]).await;
    let listed = app.get("/v1/api-keys", &reader_secret).await;
    let items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(items.iter().any(|k| k["id"] == reader));
    let forbidden = app.get("/v1/api-keys", &no_keys_secret).await;
    assert_eq!(
        forbidden.assert_error(403, "FORBIDDEN_SCOPE")["requiredScope"],
        "keys:read"
    );
    // The parent's own keys.
    let own = app.get("/v1/api-keys", &app.admin_key).await;
    assert_eq!(own.assert_ok(200)["items"].as_array().unwrap().len(), 1);
}

async fn last_used_at_is_recorded_without_a_write_per_request(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (id, secret) = app.mint_key(&child, &["keys:read"]).await;
    for _ in 0..5 {
        app.get("/v1/whoami", &secret).await.assert_ok(200);
    }
    // Recorded in memory; written when the server's worker flushes (every 10 s), here at once.
    app.control_plane().flush_key_usage().await.unwrap();
    let listed = app.get("/v1/api-keys", &secret).await;
    let key = listed.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    assert_z_time(&key["lastUsedAt"]);
}

/// Rotation racing deletion of the same key, for real on PostgreSQL: never a live key minted from
/// a key that was deleted first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_racing_delete_leaves_no_live_orphan_key() {
    let app = TestApp::spawn(Store::Postgres).await;
    let child = app.create_child("Acme").await;
    for _ in 0..8 {
        let (key, _) = app.mint_key(&child, &["*"]).await;
        let rotate = format!("/v1/organizations/{child}/api-keys/{key}/rotate");
        let delete = format!("/v1/organizations/{child}/api-keys/{key}");
        let (rotations, deleted) = tokio::join!(
            join_all((0..3).map(|_| app.post_empty(&rotate, &app.admin_key))),
            app.delete(&delete, &app.admin_key)
        );
        deleted.assert_ok(200);
        let applied: Vec<_> = rotations.iter().filter(|r| r.status == 201).collect();
        assert!(
            applied.len() <= 1,
            "one key rotated {} times",
            applied.len()
        );
        for refused in rotations.iter().filter(|r| r.status != 201) {
            refused.assert_error(409, "CONFLICT");
        }
        let listed = app
            .get(
                &format!("/v1/organizations/{child}/api-keys?limit=100"),
                &app.admin_key,
            )
            .await;
        let keys = listed.assert_ok(200)["items"].as_array().unwrap().clone();
        let old = keys.iter().find(|k| k["id"] == key).unwrap();
        match applied.first() {
            // Rotated before the delete: the new key is the rotation's, and it was answered.
            Some(rotation) => assert_eq!(old["supersededBy"], rotation.body["apiKey"]["id"]),
            // Deleted first: no key was minted from it.
            None => assert_eq!(old["supersededBy"], json!(null)),
        }
        let minted_from_it = keys
            .iter()
            .filter(|k| old["supersededBy"] == k["id"])
            .count();
        assert_eq!(minted_from_it, applied.len());
    }
}
