use reqwest::Method;
use serde_json::json;

use crate::store_tests;
use crate::support::TestApp;

store_tests!(
    every_bad_key_gets_the_same_401,
    wrong_methods_and_unknown_routes_have_envelopes,
    bodies_are_bounded_and_validated,
    malformed_ids_name_the_parameter,
    a_bad_patch_is_422_before_404_and_409,
    the_openapi_document_names_the_id_parameters_as_the_contract_does,
);

async fn every_bad_key_gets_the_same_401(app: TestApp) {
    let child = app.create_child("Acme").await;
    let (_, good) = app.mint_key(&child, &["*"]).await;
    let wrong_secret = format!(
        "{}{}",
        &good[..good.len() - 1],
        if good.ends_with('A') { 'B' } else { 'A' }
    );
    let wrong_env = good.replacen("lp_live_", "lp_test_", 1);
    let unknown = "lp_live_ABCDEFGHJKMNPQRS_0123456789012345678901234567890123456789012";
    let mut messages = Vec::new();
    for key in [wrong_secret.as_str(), &wrong_env, unknown, "garbage", ""] {
        let response = app.get("/v1/whoami", key).await;
        response.assert_error(401, "UNAUTHENTICATED");
        assert_eq!(
            response.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "RFC 9110: a 401 names the accepted scheme"
        );
        messages.push(response.body["error"]["message"].clone());
    }
    let no_header = app.request(Method::GET, "/v1/whoami", None, None).await;
    no_header.assert_error(401, "UNAUTHENTICATED");
    messages.push(no_header.body["error"]["message"].clone());
    let client = reqwest::Client::new();
    let basic = client
        .get(format!("{}/v1/whoami", app.base))
        .basic_auth("user", Some(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "only the Bearer scheme is accepted");
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one message for every kind of bad key: {messages:?}"
    );
    // Unknown routes need a key too: authentication is the first check.
    app.request(Method::GET, "/v1/nothing-here", None, None)
        .await
        .assert_error(401, "UNAUTHENTICATED");
}

async fn wrong_methods_and_unknown_routes_have_envelopes(app: TestApp) {
    let child = app.create_child("Acme").await;
    for (method, path) in [
        (Method::PUT, format!("/v1/organizations/{child}")),
        (Method::GET, format!("/v1/organizations/{child}/suspend")),
        (Method::DELETE, "/v1/organizations".to_owned()),
        (Method::POST, "/v1/whoami".to_owned()),
    ] {
        app.request(method, &path, Some(&app.admin_key), None)
            .await
            .assert_error(405, "METHOD_NOT_ALLOWED");
    }
    for path in [
        "/v1/nothing",
        "/v2/organizations",
        "/v1/organizations/x/y/z",
    ] {
        app.get(path, &app.admin_key)
            .await
            .assert_error(404, "NOT_FOUND");
    }
}

async fn bodies_are_bounded_and_validated(app: TestApp) {
    let big = json!({"name": "x", "metadata": {"k": "v".repeat(70 * 1024)}});
    app.post("/v1/organizations", &app.admin_key, big)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    let client = reqwest::Client::new();
    let not_json = client
        .post(format!("{}/v1/organizations", app.base))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 422);
    let body: serde_json::Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["details"]["fields"][0]["field"], "body");

    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(129)}), "name"),
        (json!({"name": "x", "metadata": {"k": 1}}), "metadata.k"),
        (
            json!({"name": "x", "metadata": {"k": "v".repeat(501)}}),
            "metadata.k",
        ),
        (json!({"name": "x", "billingEmail": "nope"}), "billingEmail"),
        (
            json!({"name": "x", "parentOrganizationId": null}),
            "parentOrganizationId",
        ),
        (json!(["name"]), "body"),
    ] {
        let refused = app
            .post("/v1/organizations", &app.admin_key, body.clone())
            .await;
        assert_eq!(
            refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
            field,
            "{body}"
        );
    }
    let empty = app.post_empty("/v1/organizations", &app.admin_key).await;
    assert_eq!(
        empty.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "body"
    );
    // Nothing was created by any of it.
    let listed = app.get("/v1/organizations", &app.admin_key).await;
    assert_eq!(listed.assert_ok(200)["items"], json!([]));
}

async fn malformed_ids_name_the_parameter(app: TestApp) {
    let child = app.create_child("Acme").await;
    let key_shaped = child.replacen("org_", "key_", 1);
    for bad in [
        "nope",
        "org_123",
        key_shaped.as_str(),
        "org_d4e5f6a78b9c4d0e9f2a3b4c5d6e7f80",
    ] {
        for response in [
            app.get(&format!("/v1/organizations/{bad}"), &app.admin_key)
                .await,
            app.post_empty(&format!("/v1/organizations/{bad}/suspend"), &app.admin_key)
                .await,
            app.post_empty(&format!("/v1/organizations/{bad}/resume"), &app.admin_key)
                .await,
            app.delete(&format!("/v1/organizations/{bad}"), &app.admin_key)
                .await,
        ] {
            assert_eq!(
                response.assert_error(422, "VALIDATION")["fields"][0]["field"],
                "orgId",
                "{bad}"
            );
        }
    }

    // The contract writes the reservation and webhook routes with `:id` (API.md §6.4, §7), so
    // that is the parameter a malformed one names — also for another resource's prefix.
    let key = app.mint_key(&child, &["*"]).await.1;
    let shaped = |prefix: &str| child.replacen("org_", prefix, 1);
    for bad in [
        "nope".to_owned(),
        shaped("whe_"),
        shaped("rsv_"),
        shaped("whd_"),
    ] {
        let mut responses = Vec::new();
        if !bad.starts_with("rsv_") {
            let reservation = format!("/v1/credits/reservations/{bad}");
            responses.push(app.get(&reservation, &key).await);
            let settle = format!("{reservation}/settle");
            responses.push(app.post(&settle, &key, json!({"credits": 1})).await);
            let release = format!("{reservation}/release");
            responses.push(app.post_empty(&release, &key).await);
        }
        if !bad.starts_with("whe_") {
            let endpoint = format!("/v1/webhook-endpoints/{bad}");
            responses.push(app.get(&endpoint, &key).await);
            let patch = json!({"status": "enabled"});
            responses.push(app.patch(&endpoint, &key, patch).await);
            responses.push(app.delete(&endpoint, &key).await);
            let deliveries = format!("{endpoint}/deliveries");
            responses.push(app.get(&deliveries, &key).await);
            responses.push(app.post_empty(&format!("{endpoint}/test"), &key).await);
        }
        if !bad.starts_with("whd_") {
            let replay = format!("/v1/webhook-deliveries/{bad}/replay");
            responses.push(app.post_empty(&replay, &key).await);
        }
        for response in responses {
            assert_eq!(
                response.assert_error(422, "VALIDATION")["fields"][0]["field"],
                "id",
                "{bad}"
            );
        }
    }
}

/// The OpenAPI document names the reservation and webhook path parameters `id`, like the
/// contract's routes and the 422 that names a malformed one, with the resource's own prefix.
async fn the_openapi_document_names_the_id_parameters_as_the_contract_does(app: TestApp) {
    let spec = app.openapi().await;
    let mut seen = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for old in ["{reservationId}", "{endpointId}", "{deliveryId}"] {
            assert!(!path.contains(old), "{path}");
        }
        let prefix = [
            ("/v1/credits/reservations/{id}", "rsv_"),
            ("/v1/webhook-endpoints/{id}", "whe_"),
            ("/v1/webhook-deliveries/{id}", "whd_"),
        ]
        .into_iter()
        .find(|(route, _)| path.starts_with(route));
        let Some((_, prefix)) = prefix else { continue };
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["in"] == "path")
                .unwrap_or_else(|| panic!("{method} {path} has no path parameter"));
            assert_eq!(id["name"], "id", "{method} {path}");
            let pattern = id["schema"]["pattern"].as_str().unwrap();
            let any_case: String = prefix
                .chars()
                .map(|c| match c {
                    '_' => "_".to_owned(),
                    c => format!("[{c}{}]", c.to_ascii_uppercase()),
                })
                .collect();
            assert!(pattern.contains(&any_case), "{method} {path}: {pattern}");
            seen.push(format!("{method} {path}"));
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
}

/// API.md §1.2: request validation (422) before existence (404) before state (409). What the
/// request alone decides — each metadata pair, the name, the email — is checked first; only the
/// bounds of the merged metadata need the stored organization.
async fn a_bad_patch_is_422_before_404_and_409(app: TestApp) {
    let archived = app.create_child("Gone").await;
    app.delete(&format!("/v1/organizations/{archived}"), &app.admin_key)
        .await
        .assert_ok(200);
    let nobody = format!("org_{}", uuid::Uuid::new_v4());
    for target in [nobody.as_str(), archived.as_str()] {
        for (body, field) in [
            (json!({"metadata": {"k": "v".repeat(501)}}), "metadata.k"),
            (json!({"metadata": {"": "v"}}), "metadata."),
            (json!({"name": " "}), "name"),
            (json!({"billingEmail": "nope"}), "billingEmail"),
        ] {
            let refused = app
                .patch(
                    &format!("/v1/organizations/{target}"),
                    &app.admin_key,
                    body.clone(),
                )
                .await;
            assert_eq!(
                refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
                field,
                "{target} {body}"
            );
        }
    }
    // A well-formed patch then meets the 404 and the 409.
    let fine = json!({"metadata": {"k": "v"}});
    app.patch(
        &format!("/v1/organizations/{nobody}"),
        &app.admin_key,
        fine.clone(),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.patch(
        &format!("/v1/organizations/{archived}"),
        &app.admin_key,
        fine,
    )
    .await
    .assert_error(409, "CONFLICT");
}
