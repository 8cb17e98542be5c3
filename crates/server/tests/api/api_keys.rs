use serde_json::json;

use crate::store_tests;
use crate::support::{assert_z_time, TestApp};

store_tests!(
    minting_shows_the_secret_once_and_the_key_works,
    minting_refuses_what_it_must,
    listing_and_revoking_keys,
    whoami_describes_the_calling_key,
);

async fn minting_shows_the_secret_once_and_the_key_works(app: TestApp) {
    let child = app.create_child("Acme").await;
    let minted = app
        .post(
            &format!("/v1/organizations/{child}/api-keys"),
            &app.admin_key,
            json!({"name": "acme-content-sync", "scopes": ["credits:read", "keys:read"], "env": "test"}),
        )
        .await;
    let body = minted.assert_ok(201).clone();
    let key = &body["apiKey"];
    let secret = body["secret"].as_str().unwrap();
    assert!(key["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(key["organizationId"], child);
    assert_eq!(key["name"], "acme-content-sync");
    assert_eq!(key["env"], "test");
    assert_eq!(key["scopes"], json!(["credits:read", "keys:read"]));
    assert_eq!(key["rateLimitTier"], "sandbox");
    assert_eq!(key["status"], "active");
    assert_z_time(&key["createdAt"]);
    for field in [
        "lastUsedAt",
        "rotatedAt",
        "revokedAt",
        "graceUntil",
        "supersededBy",
    ] {
        assert_eq!(key[field], json!(null), "{field}");
    }
    let prefix = key["prefix"].as_str().unwrap();
    assert!(prefix.starts_with("lp_test_") && prefix.len() == "lp_test_".len() + 16);
    assert!(secret.starts_with(&format!("{prefix}_")));
    assert_eq!(secret.len(), prefix.len() + 1 + 43);

    let listed = app
        .get(
            &format!("/v1/organizations/{child}/api-keys"),
            &app.admin_key,
        )
        .await;
    let text = listed.assert_ok(200).to_string();
    assert!(!text.contains(secret), "the secret is shown only once");

    let whoami = app.get("/v1/whoami", secret).await;
    assert_eq!(whoami.assert_ok(200)["apiKeyId"], key["id"]);
    // Default env is live, on the standard tier.
    let live = app
        .post(
            &format!("/v1/organizations/{child}/api-keys"),
            &app.admin_key,
            json!({"name": "live", "scopes": ["*"]}),
        )
        .await;
    assert_eq!(live.assert_ok(201)["apiKey"]["env"], "live");
    assert_eq!(live.body["apiKey"]["rateLimitTier"], "standard");
}

async fn minting_refuses_what_it_must(app: TestApp) {
    let child = app.create_child("Acme").await;
    let path = format!("/v1/organizations/{child}/api-keys");
    let admin_only = app
        .post(
            &path,
            &app.admin_key,
            json!({"name": "x", "scopes": ["org:admin"]}),
        )
        .await;
    assert_eq!(
        admin_only.assert_error(403, "FORBIDDEN_SCOPE")["requiredScope"],
        "org:admin"
    );

    for (body, field) in [
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["credits:admin"]}), "scopes"),
        (json!({"name": "x", "scopes": ["*"], "env": "prod"}), "env"),
        (json!({"name": "", "scopes": ["*"]}), "name"),
        (json!({"name": "x".repeat(121), "scopes": ["*"]}), "name"),
        (json!({"scopes": ["*"]}), "name"),
        (json!({"name": "x", "scopes": "*"}), "scopes"),
        (
            json!({"name": "x", "scopes": ["*"], "tier": "partner"}),
            "tier",
        ),
    ] {
        let refused = app.post(&path, &app.admin_key, body.clone()).await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
            field,
            "{body}"
        );
    }
    app.post(
        "/v1/organizations/nope/api-keys",
        &app.admin_key,
        json!({"name": "x", "scopes": ["*"]}),
    )
    .await
    .assert_error(422, "VALIDATION");
    let (_, other_key) = app.new_partner("Other").await;
    let theirs = app.create_child_of(&other_key, "Theirs").await;
    app.post(
        &format!("/v1/organizations/{theirs}/api-keys"),
        &app.admin_key,
        json!({"name": "x", "scopes": ["*"]}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    app.delete(&format!("/v1/organizations/{child}"), &app.admin_key)
        .await
        .assert_ok(200);
    let archived = app
        .post(&path, &app.admin_key, json!({"name": "x", "scopes": ["*"]}))
        .await;
    assert_eq!(archived.assert_error(409, "CONFLICT")["status"], "archived");
}

async fn listing_and_revoking_keys(app: TestApp) {
    let child = app.create_child("Acme").await;
    let other_child = app.create_child("Other").await;
    let (first, first_secret) = app.mint_key(&child, &["*"]).await;
    let (second, _) = app.mint_key(&child, &["credits:read"]).await;
    let (foreign, _) = app.mint_key(&other_child, &["*"]).await;

    let listed = app
        .get(
            &format!("/v1/organizations/{child}/api-keys"),
            &app.admin_key,
        )
        .await;
    let ids: Vec<_> = listed.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(second), json!(first)], "newest first");

    let revoke = format!("/v1/organizations/{child}/api-keys/{first}");
    let revoked = app.delete(&revoke, &app.admin_key).await;
    let body = revoked.assert_ok(200).clone();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["apiKey"]["status"], "revoked");
    assert_z_time(&body["apiKey"]["revokedAt"]);
    app.get("/v1/whoami", &first_secret)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let again = app.delete(&revoke, &app.admin_key).await;
    assert_eq!(
        again.assert_ok(200),
        &body,
        "revoking a revoked key returns its terminal shape"
    );

    app.delete(
        &format!("/v1/organizations/{child}/api-keys/{foreign}"),
        &app.admin_key,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.delete(
        &format!("/v1/organizations/{child}/api-keys/key_00000000-0000-4000-8000-000000000000"),
        &app.admin_key,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let malformed = app
        .delete(
            &format!("/v1/organizations/{child}/api-keys/{}", child),
            &app.admin_key,
        )
        .await;
    assert_eq!(
        malformed.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "keyId"
    );
    let bare = first.strip_prefix("key_").unwrap().to_uppercase();
    app.delete(
        &format!("/v1/organizations/{child}/api-keys/{bare}"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
}

async fn whoami_describes_the_calling_key(app: TestApp) {
    let admin = app.get("/v1/whoami", &app.admin_key).await;
    let body = admin.assert_ok(200);
    assert_eq!(body["organizationName"], "Default organization");
    assert_eq!(body["parentOrganizationId"], json!(null));
    assert_eq!(body["scopes"], json!(["*", "org:admin"]));
    assert_eq!(body["rateLimitTier"], "partner");
    assert_eq!(body["env"], "live");

    let child = app.create_child("Acme").await;
    let (key_id, secret) = app.mint_key(&child, &["audit:read"]).await;
    let whoami = app.get("/v1/whoami", &secret).await;
    let body = whoami.assert_ok(200);
    assert_eq!(body["organizationId"], child);
    assert_eq!(body["organizationName"], "Acme");
    assert_eq!(body["parentOrganizationId"], app.admin_org);
    assert_eq!(body["apiKeyId"], key_id);
    assert_eq!(body["scopes"], json!(["audit:read"]));
}
