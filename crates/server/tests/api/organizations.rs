use serde_json::json;

use crate::store_tests;
use crate::support::{assert_org_time, TestApp};

store_tests!(
    the_seed_example_answers_as_the_seed_shows,
    create_get_list_and_summary,
    patch_changes_only_what_is_sent,
    no_ops_change_nothing,
    archive_is_terminal_and_revokes_keys,
    ids_are_accepted_bare_and_in_any_case,
    only_direct_children_exist_for_the_caller,
    the_control_plane_needs_org_admin,
    openapi_and_operations_routes,
);

async fn the_seed_example_answers_as_the_seed_shows(app: TestApp) {
    let created = app
        .post(
            "/v1/organizations",
            &app.admin_key,
            json!({"name": "Acme Coffee", "metadata": {"externalId": "cust_12345", "plan": "growth"}, "billingEmail": "ops@acme.example"}),
        )
        .await;
    let id = created.assert_ok(201)["id"].as_str().unwrap().to_owned();

    // curl -X POST …/suspend -H "Authorization: Bearer $PARENT_KEY": no body, no Content-Type.
    let response = app
        .post_empty(&format!("/v1/organizations/{id}/suspend"), &app.admin_key)
        .await;
    let org = response.assert_ok(200);
    assert_eq!(
        response
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "application/json; charset=utf-8"
    );
    let keys: Vec<&str> = org
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "parentOrganizationId",
            "name",
            "status",
            "metadata",
            "billingEmail",
            "archivedAt",
            "createdAt",
            "updatedAt"
        ]
    );
    assert_eq!(org["id"], id);
    assert_eq!(org["parentOrganizationId"], app.admin_org);
    assert_eq!(org["name"], "Acme Coffee");
    assert_eq!(org["status"], "suspended");
    assert_eq!(
        org["metadata"],
        json!({"externalId": "cust_12345", "plan": "growth"})
    );
    assert_eq!(org["billingEmail"], "ops@acme.example");
    assert_eq!(org["archivedAt"], json!(null));
    assert_org_time(&org["createdAt"]);
    assert_org_time(&org["updatedAt"]);
    assert!(
        org["updatedAt"].as_str() > org["createdAt"].as_str()
            || org["updatedAt"] == org["createdAt"]
    );
}

async fn create_get_list_and_summary(app: TestApp) {
    let created = app
        .post(
            "/v1/organizations",
            &app.admin_key,
            json!({"name": "  Padded  ", "metadata": {"a": "1"}}),
        )
        .await;
    let org = created.assert_ok(201).clone();
    assert_eq!(org["name"], "Padded");
    assert_eq!(org["status"], "active");
    assert_eq!(org["billingEmail"], json!(null));
    assert_eq!(org["createdAt"], org["updatedAt"]);
    let id = org["id"].as_str().unwrap();
    app.mint_key(id, &["credits:read"]).await;

    let got = app
        .get(&format!("/v1/organizations/{id}"), &app.admin_key)
        .await;
    let body = got.assert_ok(200);
    for field in ["id", "name", "status", "metadata", "createdAt", "updatedAt"] {
        assert_eq!(body[field], org[field], "{field}");
    }
    assert_eq!(
        body["summary"],
        json!({"balance": 0, "available": 0, "reservedCredits": 0, "activeApiKeys": 1,
               "creditConfig": {"monthlyCreditCap": null, "refillThreshold": null, "refillAmount": null, "autoRefillEnabled": false}})
    );

    let listed = app.get("/v1/organizations", &app.admin_key).await;
    let items = listed.assert_ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items, vec![org.clone()]);
    assert_eq!(listed.body["nextCursor"], json!(null));

    app.post_empty(&format!("/v1/organizations/{id}/suspend"), &app.admin_key)
        .await
        .assert_ok(200);
    let other = app.create_child("Other").await;
    let suspended = app
        .get("/v1/organizations?status=suspended", &app.admin_key)
        .await;
    let ids: Vec<_> = suspended.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(id)]);
    let active = app
        .get("/v1/organizations?status=active", &app.admin_key)
        .await;
    assert_eq!(active.assert_ok(200)["items"][0]["id"], other);
    app.get("/v1/organizations?status=gone", &app.admin_key)
        .await
        .assert_error(422, "VALIDATION");
}

async fn patch_changes_only_what_is_sent(app: TestApp) {
    let created = app
        .post(
            "/v1/organizations",
            &app.admin_key,
            json!({"name": "Acme", "metadata": {"keep": "1", "change": "2", "drop": "3"}, "billingEmail": "a@b.example"}),
        )
        .await;
    let id = created.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/organizations/{id}");

    let patched = app
        .patch(
            &path,
            &app.admin_key,
            json!({"metadata": {"change": "20", "drop": "", "new": "4"}}),
        )
        .await;
    let body = patched.assert_ok(200);
    assert_eq!(
        body["metadata"],
        json!({"keep": "1", "change": "20", "new": "4"})
    );
    assert_eq!(body["name"], "Acme");
    assert_eq!(body["billingEmail"], "a@b.example");
    assert_ne!(body["updatedAt"], created.body["updatedAt"]);

    let cleared = app
        .patch(
            &path,
            &app.admin_key,
            json!({"billingEmail": null, "name": "Acme 2"}),
        )
        .await;
    assert_eq!(cleared.assert_ok(200)["billingEmail"], json!(null));
    assert_eq!(cleared.body["name"], "Acme 2");
    assert_eq!(cleared.body["metadata"]["keep"], "1");

    let all_gone = app
        .patch(&path, &app.admin_key, json!({"metadata": null}))
        .await;
    assert_eq!(all_gone.assert_ok(200)["metadata"], json!({}));

    for (body, field) in [
        (json!({"status": "active"}), "status"),
        (json!({"metadata": {"k": null}}), "metadata.k"),
        (json!({"name": ""}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"billingEmail": "not an email"}), "billingEmail"),
    ] {
        let refused = app.patch(&path, &app.admin_key, body.clone()).await;
        let details = refused.assert_error(422, "VALIDATION");
        assert_eq!(details["fields"][0]["field"], field, "{body}");
    }
    let too_many: serde_json::Map<_, _> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let refused = app
        .patch(&path, &app.admin_key, json!({"metadata": too_many}))
        .await;
    assert_eq!(
        refused.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "metadata"
    );
}

async fn no_ops_change_nothing(app: TestApp) {
    let id = app.create_child("Acme").await;
    let suspend = format!("/v1/organizations/{id}/suspend");
    let resume = format!("/v1/organizations/{id}/resume");

    let first = app.post_empty(&suspend, &app.admin_key).await;
    let again = app.post_empty(&suspend, &app.admin_key).await;
    assert_eq!(
        again.assert_ok(200),
        first.assert_ok(200),
        "suspending a suspended org changes nothing"
    );

    let resumed = app.post_empty(&resume, &app.admin_key).await;
    assert_eq!(resumed.assert_ok(200)["status"], "active");
    let resumed_again = app.post_empty(&resume, &app.admin_key).await;
    assert_eq!(resumed_again.assert_ok(200), resumed.assert_ok(200));

    let same = app
        .patch(
            &format!("/v1/organizations/{id}"),
            &app.admin_key,
            json!({"name": "Acme", "metadata": {}}),
        )
        .await;
    assert_eq!(
        same.assert_ok(200),
        resumed.assert_ok(200),
        "a patch that changes nothing is a no-op"
    );

    // With a reason in the body, as the contract allows.
    let with_reason = app
        .post(
            &suspend,
            &app.admin_key,
            json!({"reason": "unpaid invoice"}),
        )
        .await;
    assert_eq!(with_reason.assert_ok(200)["status"], "suspended");
    let long = app
        .post(&suspend, &app.admin_key, json!({"reason": "x".repeat(501)}))
        .await;
    assert_eq!(
        long.assert_error(422, "VALIDATION")["fields"][0]["field"],
        "reason"
    );
}

async fn archive_is_terminal_and_revokes_keys(app: TestApp) {
    let id = app.create_child("Leaving").await;
    let (_, key_a) = app.mint_key(&id, &["credits:read"]).await;
    let (_, key_b) = app.mint_key(&id, &["*"]).await;
    app.get("/v1/whoami", &key_a).await.assert_ok(200);
    app.post_empty(&format!("/v1/organizations/{id}/suspend"), &app.admin_key)
        .await
        .assert_ok(200);

    let archived = app
        .delete(&format!("/v1/organizations/{id}"), &app.admin_key)
        .await;
    let body = archived.assert_ok(200).clone();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "status",
            "archivedAt",
            "reclaimedCredits",
            "revokedApiKeys"
        ]
    );
    assert_eq!(body["status"], "archived");
    assert_eq!(body["revokedApiKeys"], 2);
    assert_eq!(body["reclaimedCredits"], 0);
    assert_org_time(&body["archivedAt"]);

    for key in [&key_a, &key_b] {
        app.get("/v1/whoami", key)
            .await
            .assert_error(401, "UNAUTHENTICATED");
    }
    let again = app
        .delete(&format!("/v1/organizations/{id}"), &app.admin_key)
        .await;
    assert_eq!(again.assert_ok(200)["archivedAt"], body["archivedAt"]);
    assert_eq!(
        (
            again.body["revokedApiKeys"].clone(),
            again.body["reclaimedCredits"].clone()
        ),
        (json!(0), json!(0))
    );

    let got = app
        .get(&format!("/v1/organizations/{id}"), &app.admin_key)
        .await;
    assert_eq!(got.assert_ok(200)["status"], "archived");
    assert_eq!(got.body["archivedAt"], body["archivedAt"]);
    assert_eq!(got.body["summary"]["activeApiKeys"], 0);

    let suspend = app
        .post_empty(&format!("/v1/organizations/{id}/suspend"), &app.admin_key)
        .await;
    let details = suspend.assert_error(409, "CONFLICT");
    assert_eq!(details["status"], "archived");
    assert_eq!(details["organizationId"], id);
    app.post_empty(&format!("/v1/organizations/{id}/resume"), &app.admin_key)
        .await
        .assert_error(409, "CONFLICT");
    app.patch(
        &format!("/v1/organizations/{id}"),
        &app.admin_key,
        json!({"name": "x"}),
    )
    .await
    .assert_error(409, "CONFLICT");
}

async fn ids_are_accepted_bare_and_in_any_case(app: TestApp) {
    let id = app.create_child("Cases").await;
    let bare = id.strip_prefix("org_").unwrap();
    for form in [
        bare.to_owned(),
        bare.to_uppercase(),
        format!("ORG_{}", bare.to_uppercase()),
        format!("org_{}", bare.to_uppercase()),
    ] {
        let got = app
            .get(&format!("/v1/organizations/{form}"), &app.admin_key)
            .await;
        assert_eq!(got.assert_ok(200)["id"], id, "{form}");
    }
    let suspended = app
        .post_empty(
            &format!("/v1/organizations/{}/suspend", bare.to_uppercase()),
            &app.admin_key,
        )
        .await;
    assert_eq!(suspended.assert_ok(200)["id"], id);
}

async fn only_direct_children_exist_for_the_caller(app: TestApp) {
    let (other_partner, other_key) = app.new_partner("Another partner").await;
    let their_child = app.create_child_of(&other_key, "Theirs").await;
    let never_existed = "org_00000000-0000-4000-8000-000000000000".to_owned();
    for target in [
        their_child.clone(),
        other_partner.clone(),
        app.admin_org.clone(),
        never_existed,
    ] {
        for (method, path) in [
            ("GET", format!("/v1/organizations/{target}")),
            ("POST", format!("/v1/organizations/{target}/suspend")),
            ("POST", format!("/v1/organizations/{target}/resume")),
            ("DELETE", format!("/v1/organizations/{target}")),
            ("GET", format!("/v1/organizations/{target}/api-keys")),
        ] {
            let response = match method {
                "GET" => app.get(&path, &app.admin_key).await,
                "POST" => app.post_empty(&path, &app.admin_key).await,
                _ => app.delete(&path, &app.admin_key).await,
            };
            response.assert_error(404, "NOT_FOUND");
        }
        app.patch(
            &format!("/v1/organizations/{target}"),
            &app.admin_key,
            json!({"name": "x"}),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    }
    // Nothing happened to the other partner's child.
    let theirs = app
        .get(&format!("/v1/organizations/{their_child}"), &other_key)
        .await;
    assert_eq!(theirs.assert_ok(200)["status"], "active");
    // And their listing shows only their own child.
    let listed = app.get("/v1/organizations", &other_key).await;
    assert_eq!(listed.assert_ok(200)["items"].as_array().unwrap().len(), 1);
}

async fn the_control_plane_needs_org_admin(app: TestApp) {
    let child = app.create_child("Child").await;
    let (_, child_key) = app.mint_key(&child, &["*"]).await;
    let sibling = app.create_child("Sibling").await;
    // A child key holds no org:admin: 403 before anything else, even for a malformed id or a body
    // that would be invalid (API.md §1.2 order).
    for (method, path) in [
        ("GET", "/v1/organizations".to_owned()),
        ("GET", format!("/v1/organizations/{sibling}")),
        ("POST", format!("/v1/organizations/{sibling}/suspend")),
        ("POST", "/v1/organizations/not-an-id/suspend".to_owned()),
        ("POST", format!("/v1/organizations/{sibling}/resume")),
        ("DELETE", format!("/v1/organizations/{sibling}")),
        ("POST", format!("/v1/organizations/{sibling}/api-keys")),
        ("GET", format!("/v1/organizations/{sibling}/api-keys")),
    ] {
        let response = match method {
            "GET" => app.get(&path, &child_key).await,
            "POST" => app.post(&path, &child_key, json!({"unknown": true})).await,
            _ => app.delete(&path, &child_key).await,
        };
        let details = response.assert_error(403, "FORBIDDEN_SCOPE");
        assert_eq!(details["requiredScope"], "org:admin", "{method} {path}");
    }
    // One level deep: the child cannot create organizations.
    let response = app
        .post(
            "/v1/organizations",
            &child_key,
            json!({"name": "Grandchild"}),
        )
        .await;
    let details = response.assert_error(422, "VALIDATION");
    assert_eq!(details["fields"][0]["field"], "organization");
}

async fn openapi_and_operations_routes(app: TestApp) {
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200, "/metrics needs no key");
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/whoami""#),
        "the setup's whoami is counted: {text}"
    );
    for path in ["/healthz", "/readyz"] {
        let response = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} needs no key");
    }
    let spec: serde_json::Value = client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/whoami", &["get"][..]),
        ("/v1/organizations", &["get", "post"]),
        ("/v1/organizations/{orgId}", &["get", "patch", "delete"]),
        ("/v1/organizations/{orgId}/suspend", &["post"]),
        ("/v1/organizations/{orgId}/resume", &["post"]),
        ("/v1/organizations/{orgId}/api-keys", &["get", "post"]),
        ("/v1/organizations/{orgId}/api-keys/{keyId}", &["delete"]),
        (
            "/v1/organizations/{orgId}/api-keys/{keyId}/rotate",
            &["post"],
        ),
        ("/v1/api-keys", &["get"]),
        ("/v1/api-keys/{keyId}/kill", &["post"]),
        ("/v1/api-keys/{keyId}/rotate", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is described");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has a success response"
            );
            if path.starts_with("/v1/") {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
            }
        }
    }
    let suspend = &paths["/v1/organizations/{orgId}/suspend"]["post"]["responses"];
    for status in ["200", "401", "403", "404", "409", "422", "429"] {
        assert!(suspend[status].is_object(), "suspend documents {status}");
    }
    let headers = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(headers("/v1/organizations", "post").contains(&"Idempotency-Key".to_owned()));
    assert!(!headers("/v1/organizations", "get").contains(&"Idempotency-Key".to_owned()));
    assert!(headers("/v1/api-keys", "get").contains(&"X-Layers-Organization".to_owned()));
    assert!(!headers("/v1/organizations", "get").contains(&"X-Layers-Organization".to_owned()));
    // Every answer of the API documents the headers every response carries (API.md §1.2, §1.7).
    for (path, methods) in paths.iter().filter(|(path, _)| path.starts_with("/v1/")) {
        for (method, operation) in methods.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let documented = &response["headers"];
                for name in [
                    "X-Request-Id",
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "X-RateLimit-Endpoint-Class",
                ] {
                    assert!(
                        documented[name].is_object(),
                        "{method} {path} {status} documents {name}"
                    );
                }
                assert_eq!(
                    documented["Retry-After"].is_object(),
                    status == "429",
                    "{method} {path} {status}: Retry-After on 429 only"
                );
            }
        }
    }
}
