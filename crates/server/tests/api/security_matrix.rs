//! The security matrix: every route that exists × every kind of caller × the targets that make
//! each check of API.md §1.2 fire, answered in the contract's order of checks — authentication
//! (401) → kill switch (503) → scope (403) → request validation incl. path ids (422) → existence
//! and ownership (404) → state (409). The expected answer of each cell is computed by one small
//! oracle ([`expect`]) from the caller's standing and the target's facts, so the table is the
//! product of three short lists (16 callers × 26 routes × up to 13 targets: 2,208 cells per
//! store), not hundreds of hand-written lines. Every failing cell is reported, not just the first.
//!
//! Cells that should succeed and would change something get a fresh target of the same kind, so
//! cells cannot disturb each other; at the end the shared targets are checked to be untouched by
//! every refused request.
//!
//! Two kinds of key cannot be minted through the API: a top-level partner's key *without*
//! `org:admin` (only children get minted keys; the operator's commands always grant `org:admin`),
//! and a second key of a top-level organization (what its "own key" routes — kill, rotate — act
//! on). The test writes those straight into the store through the `ApiKeyStore` port: on
//! PostgreSQL through a second `PgStore` on the test's database. On the embedded store the
//! `MemoryStore` lives inside the `TestApp`, which does not expose it, so the cells that need such
//! a key run on a twin server this file wires itself — the same `adapters_http::configure` and
//! `ControlPlane` over a `MemoryStore` it owns — and all the others on the `TestApp`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use adapters_http::{ApiState, Readiness};
use adapters_memory::MemoryStore;
use adapters_pg::{PgStore, PoolSettings};
use domain::api_key::{KeyEnv, KeyName, MintedSecret, RateLimitTier, Scope, Scopes};
use domain::organization::OrganizationName;
use domain::ports::{ApiKeyStore, KeyInsert};
use domain::trail::Trail;
use domain::use_cases::{ControlPlane, Ports};
use domain::{ApiKeyId, OrganizationId};
use reqwest::Method;
use serde_json::{json, Value};

use crate::store_tests;
use crate::support::{assert_z_time, Response, TestApp};

store_tests!(every_route_answers_every_caller_in_the_contracts_order_of_checks);

// ---------------------------------------------------------------------------------------------
// The three lists: callers, routes, targets
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    /// The bootstrap partner's key: `*` and `org:admin`.
    ParentAdmin,
    /// A key of the same top-level partner holding `*` but not `org:admin`.
    PartnerWithoutOrgAdmin,
    /// A key (`*`) of child A, a direct child of the bootstrap partner.
    ChildKey,
    /// A key (`*`) of child B, A's sibling.
    SiblingKey,
    /// A key of child A holding only `credits:read` (so `keys:*` routes are 403 too).
    NarrowChildKey,
    /// The admin key of another top-level partner.
    OtherPartner,
    /// A key of child A, revoked by the parent.
    RevokedKey,
    /// A key of child A killed on its own by another key of child A (API.md §5.4).
    KilledKey,
    /// A key of an archived child (archiving revoked it).
    ArchivedOrgKey,
    /// A key of a suspended child.
    SuspendedOrgKey,
    /// The admin key of a top-level partner the operator suspended.
    SuspendedPartnerKey,
    /// A key of an active child of that suspended partner.
    SuspendedPartnersChildKey,
    /// A string not shaped like a key.
    MalformedKey,
    /// A real handle with a wrong secret.
    WrongSecret,
    /// A good key sent with another scheme (`Basic`).
    OtherScheme,
    /// No `Authorization` header.
    MissingHeader,
}

const CALLERS: [Caller; 16] = [
    Caller::ParentAdmin,
    Caller::PartnerWithoutOrgAdmin,
    Caller::ChildKey,
    Caller::SiblingKey,
    Caller::NarrowChildKey,
    Caller::OtherPartner,
    Caller::RevokedKey,
    Caller::KilledKey,
    Caller::ArchivedOrgKey,
    Caller::SuspendedOrgKey,
    Caller::SuspendedPartnerKey,
    Caller::SuspendedPartnersChildKey,
    Caller::MalformedKey,
    Caller::WrongSecret,
    Caller::OtherScheme,
    Caller::MissingHeader,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Whoami,
    CreateOrganization,
    ListOrganizations,
    GetOrganization,
    PatchOrganization,
    ArchiveOrganization,
    Suspend,
    Resume,
    MintKey,
    ListKeys,
    RevokeKey,
    RotateChildKey,
    ListOwnKeys,
    KillOwnKey,
    RotateOwnKey,
    CreateEndpoint,
    ListEndpoints,
    GetEndpoint,
    PatchEndpoint,
    DeleteEndpoint,
    ListDeliveries,
    TestEndpoint,
    ReplayDelivery,
    AuditLog,
    /// Not a route: the gate answers it too (401 / 503 before 404).
    NoSuchPath,
    /// A known path with a method it does not take (405 after the gate).
    WrongMethod,
}

const ROUTES: [Route; 26] = [
    Route::Whoami,
    Route::CreateOrganization,
    Route::ListOrganizations,
    Route::GetOrganization,
    Route::PatchOrganization,
    Route::ArchiveOrganization,
    Route::Suspend,
    Route::Resume,
    Route::MintKey,
    Route::ListKeys,
    Route::RevokeKey,
    Route::RotateChildKey,
    Route::ListOwnKeys,
    Route::KillOwnKey,
    Route::RotateOwnKey,
    Route::CreateEndpoint,
    Route::ListEndpoints,
    Route::GetEndpoint,
    Route::PatchEndpoint,
    Route::DeleteEndpoint,
    Route::ListDeliveries,
    Route::TestEndpoint,
    Route::ReplayDelivery,
    Route::AuditLog,
    Route::NoSuchPath,
    Route::WrongMethod,
];

impl Route {
    /// The scope the route needs (API.md §2.2, §5.4); `None`: none.
    fn scope(self) -> Option<&'static str> {
        match self {
            Route::Whoami | Route::NoSuchPath | Route::WrongMethod => None,
            Route::ListOwnKeys => Some("keys:read"),
            Route::KillOwnKey | Route::RotateOwnKey => Some("keys:write"),
            Route::ListEndpoints | Route::GetEndpoint | Route::ListDeliveries => {
                Some("webhooks:read")
            }
            Route::CreateEndpoint
            | Route::PatchEndpoint
            | Route::DeleteEndpoint
            | Route::TestEndpoint
            | Route::ReplayDelivery => Some("webhooks:write"),
            Route::AuditLog => Some("audit:read"),
            _ => Some("org:admin"),
        }
    }

    /// `/v1/webhook-endpoints/{id}/…` or `/v1/webhook-deliveries/{id}/…`: the targets the
    /// id is drawn from. Both address something of the caller's own (acting) organization.
    fn hook_targets(self) -> Option<&'static [TargetKind]> {
        match self {
            Route::GetEndpoint
            | Route::PatchEndpoint
            | Route::DeleteEndpoint
            | Route::ListDeliveries
            | Route::TestEndpoint => Some(&ENDPOINT_TARGETS),
            Route::ReplayDelivery => Some(&DELIVERY_TARGETS),
            _ => None,
        }
    }

    /// The webhook routes' path parameter: the contract names it `id` (API.md §7).
    fn hook_param(self) -> Option<&'static str> {
        self.hook_targets().map(|_| "id")
    }

    /// `/v1/organizations/{orgId}/…`
    fn takes_org(self) -> bool {
        matches!(
            self,
            Route::GetOrganization
                | Route::PatchOrganization
                | Route::ArchiveOrganization
                | Route::Suspend
                | Route::Resume
                | Route::MintKey
                | Route::ListKeys
                | Route::RevokeKey
                | Route::RotateChildKey
        )
    }

    fn takes_key(self) -> bool {
        matches!(
            self,
            Route::RevokeKey | Route::RotateChildKey | Route::KillOwnKey | Route::RotateOwnKey
        )
    }

    /// `/v1/api-keys/{keyId}/…`: a key of the caller's own organization.
    fn own_key(self) -> bool {
        matches!(self, Route::KillOwnKey | Route::RotateOwnKey)
    }

    /// Refused with `409 CONFLICT` on an archived organization (API.md §4.2, §4.6, §5.2).
    fn refused_when_archived(self) -> bool {
        matches!(
            self,
            Route::PatchOrganization
                | Route::Suspend
                | Route::Resume
                | Route::MintKey
                | Route::RotateChildKey
        )
    }

    /// Whether a successful call changes its target (then each such cell gets a fresh one).
    fn mutates(self) -> bool {
        matches!(
            self,
            Route::PatchOrganization
                | Route::ArchiveOrganization
                | Route::Suspend
                | Route::Resume
                | Route::MintKey
                | Route::RevokeKey
                | Route::RotateChildKey
                | Route::KillOwnKey
                | Route::RotateOwnKey
                | Route::PatchEndpoint
                | Route::DeleteEndpoint
        )
    }

    fn targets(self) -> Vec<TargetKind> {
        if let Some(targets) = self.hook_targets() {
            targets.to_vec()
        } else if self.own_key() {
            OWN_KEY_TARGETS.to_vec()
        } else if self.takes_key() {
            ORG_TARGETS.into_iter().chain(KEY_TARGETS).collect()
        } else if self.takes_org() {
            ORG_TARGETS.to_vec()
        } else {
            vec![TargetKind::Nothing]
        }
    }

    fn success(self) -> u16 {
        match self {
            Route::CreateOrganization
            | Route::MintKey
            | Route::RotateChildKey
            | Route::CreateEndpoint => 201,
            Route::TestEndpoint | Route::ReplayDelivery => 202,
            _ => 200,
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Whoami
            | Route::ListOrganizations
            | Route::GetOrganization
            | Route::ListKeys
            | Route::ListOwnKeys
            | Route::ListEndpoints
            | Route::GetEndpoint
            | Route::ListDeliveries
            | Route::AuditLog
            | Route::NoSuchPath => Method::GET,
            Route::CreateOrganization
            | Route::Suspend
            | Route::Resume
            | Route::MintKey
            | Route::RotateChildKey
            | Route::KillOwnKey
            | Route::RotateOwnKey
            | Route::CreateEndpoint
            | Route::TestEndpoint
            | Route::ReplayDelivery => Method::POST,
            Route::PatchOrganization | Route::PatchEndpoint => Method::PATCH,
            Route::ArchiveOrganization | Route::RevokeKey | Route::DeleteEndpoint => Method::DELETE,
            Route::WrongMethod => Method::PUT,
        }
    }

    fn path(self, target: &Target) -> String {
        let (org, key, hook) = (&target.org_path, &target.key_path, &target.hook.path);
        match self {
            Route::Whoami => "/v1/whoami".to_owned(),
            Route::CreateOrganization | Route::ListOrganizations | Route::WrongMethod => {
                "/v1/organizations".to_owned()
            }
            Route::GetOrganization | Route::PatchOrganization | Route::ArchiveOrganization => {
                format!("/v1/organizations/{org}")
            }
            Route::Suspend => format!("/v1/organizations/{org}/suspend"),
            Route::Resume => format!("/v1/organizations/{org}/resume"),
            Route::MintKey | Route::ListKeys => format!("/v1/organizations/{org}/api-keys"),
            Route::RevokeKey => format!("/v1/organizations/{org}/api-keys/{key}"),
            Route::RotateChildKey => format!("/v1/organizations/{org}/api-keys/{key}/rotate"),
            Route::ListOwnKeys => "/v1/api-keys".to_owned(),
            Route::KillOwnKey => format!("/v1/api-keys/{key}/kill"),
            Route::RotateOwnKey => format!("/v1/api-keys/{key}/rotate"),
            Route::CreateEndpoint | Route::ListEndpoints => "/v1/webhook-endpoints".to_owned(),
            Route::GetEndpoint | Route::PatchEndpoint | Route::DeleteEndpoint => {
                format!("/v1/webhook-endpoints/{hook}")
            }
            Route::ListDeliveries => format!("/v1/webhook-endpoints/{hook}/deliveries"),
            Route::TestEndpoint => format!("/v1/webhook-endpoints/{hook}/test"),
            Route::ReplayDelivery => format!("/v1/webhook-deliveries/{hook}/replay"),
            Route::AuditLog => "/v1/audit-log".to_owned(),
            Route::NoSuchPath => "/v1/no-such-route".to_owned(),
        }
    }

    /// A valid body, so that only the caller and the target decide the answer.
    fn body(self) -> Option<Value> {
        match self {
            Route::CreateOrganization => Some(json!({"name": "matrix child"})),
            Route::PatchOrganization => Some(json!({"metadata": {"touchedBy": "matrix"}})),
            Route::MintKey => Some(json!({"name": "matrix key", "scopes": ["credits:read"]})),
            Route::CreateEndpoint => Some(endpoint_body()),
            Route::PatchEndpoint => Some(json!({"description": "touched by the matrix"})),
            // Suspend, resume, rotate, kill, DELETE: no body, no Content-Type (`curl -X POST`).
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TargetKind {
    /// The route addresses nothing.
    Nothing,
    /// An active direct child of the bootstrap partner, and one of its keys.
    ActiveChild,
    /// The same, addressed by its bare UUID in upper case (API.md §1.3).
    ActiveChildBareUppercase,
    SuspendedChild,
    ArchivedChild,
    /// An active child of the other partner.
    OtherPartnersChild,
    /// The caller's own organization (never a child of itself).
    CallerItself,
    /// A well-formed organization id nobody has.
    UnknownOrganization,
    MalformedOrganizationId,
    /// A key id where an organization id belongs.
    KeyIdAsOrganizationId,
    // Keys:
    /// An active child with a malformed key id.
    MalformedKeyId,
    /// An active child with an organization id where the key id belongs.
    OrganizationIdAsKeyId,
    /// An active child with the key of its sibling.
    SiblingsKey,
    /// An active child with a well-formed key id nobody has.
    UnknownKey,
    /// Another key of the caller's own organization.
    OwnKey,
    /// A key of another partner's child: nobody's own here.
    ForeignKey,
    // Webhooks:
    /// An endpoint of the caller's own organization.
    OwnEndpoint,
    /// An endpoint of another partner's child: nobody's own here.
    ForeignEndpoint,
    UnknownEndpoint,
    MalformedEndpointId,
    /// A key id where an endpoint id belongs.
    KeyIdAsEndpointId,
    /// A delivery to an endpoint of the caller's own organization.
    OwnDelivery,
    ForeignDelivery,
    UnknownDelivery,
    MalformedDeliveryId,
    /// An endpoint id where a delivery id belongs.
    EndpointIdAsDeliveryId,
}

const ORG_TARGETS: [TargetKind; 9] = [
    TargetKind::ActiveChild,
    TargetKind::ActiveChildBareUppercase,
    TargetKind::SuspendedChild,
    TargetKind::ArchivedChild,
    TargetKind::OtherPartnersChild,
    TargetKind::CallerItself,
    TargetKind::UnknownOrganization,
    TargetKind::MalformedOrganizationId,
    TargetKind::KeyIdAsOrganizationId,
];

const KEY_TARGETS: [TargetKind; 4] = [
    TargetKind::MalformedKeyId,
    TargetKind::OrganizationIdAsKeyId,
    TargetKind::SiblingsKey,
    TargetKind::UnknownKey,
];

const OWN_KEY_TARGETS: [TargetKind; 5] = [
    TargetKind::OwnKey,
    TargetKind::ForeignKey,
    TargetKind::UnknownKey,
    TargetKind::MalformedKeyId,
    TargetKind::OrganizationIdAsKeyId,
];

const ENDPOINT_TARGETS: [TargetKind; 5] = [
    TargetKind::OwnEndpoint,
    TargetKind::ForeignEndpoint,
    TargetKind::UnknownEndpoint,
    TargetKind::MalformedEndpointId,
    TargetKind::KeyIdAsEndpointId,
];

const DELIVERY_TARGETS: [TargetKind; 5] = [
    TargetKind::OwnDelivery,
    TargetKind::ForeignDelivery,
    TargetKind::UnknownDelivery,
    TargetKind::MalformedDeliveryId,
    TargetKind::EndpointIdAsDeliveryId,
];

/// Where the matrix's endpoints point: a local port nothing listens on (the suite's servers
/// accept private addresses, `support::test_config`), so an attempted delivery fails at once and
/// nothing leaves the machine.
const ENDPOINT_URL: &str = "http://127.0.0.1:9/matrix";

fn endpoint_body() -> Value {
    json!({"url": ENDPOINT_URL, "events": ["organization.suspended"]})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Suspended,
    Archived,
}

/// What a request is addressed to: the path segments as sent, and the facts behind them.
#[derive(Debug, Clone)]
struct Target {
    org_path: String,
    key_path: String,
    /// The organization addressed, when the path names a real one: (id, parent, status).
    org: Option<(String, Option<String>, Status)>,
    /// Whether the paths are well-formed ids of the right kind.
    org_valid: bool,
    key_valid: bool,
    /// The organization the addressed key belongs to, when it exists.
    key_owner: Option<String>,
    /// The webhook endpoint or delivery addressed, on the webhook routes.
    hook: Hook,
}

/// A webhook endpoint or delivery a path names: the segment as sent and the facts behind it.
#[derive(Debug, Clone, Default)]
struct Hook {
    path: String,
    /// A well-formed id of the right kind.
    valid: bool,
    /// The organization whose endpoint it is (or whose endpoint the delivery went to).
    owner: Option<String>,
    /// The endpoint it is, or the delivery's endpoint.
    endpoint: Option<String>,
}

/// Who the caller is, as the server should see it.
#[derive(Debug, Clone)]
enum Standing {
    Unauthenticated,
    /// Refused by the kill switch: this organization is suspended, or (`key`) this key was
    /// killed on its own.
    Killed {
        organization: String,
        key: Option<String>,
    },
    Admitted {
        organization: String,
        org_admin: bool,
        /// Every data scope, through `*`: `keys:*`, `webhooks:*`, `audit:read`.
        keys: bool,
        /// The organization is a child: it may not create organizations (one level deep).
        child: bool,
    },
}

/// The answer a cell must get.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Success(u16),
    Error {
        status: u16,
        code: &'static str,
        /// `details.fields[0].field` of a 422.
        field: Option<&'static str>,
    },
}

fn error(status: u16, code: &'static str) -> Expected {
    Expected::Error {
        status,
        code,
        field: None,
    }
}

fn invalid(field: &'static str) -> Expected {
    Expected::Error {
        status: 422,
        code: "VALIDATION",
        field: Some(field),
    }
}

/// API.md §1.2's order of checks, first failure wins.
fn expect(route: Route, standing: &Standing, target: &Target) -> Expected {
    let (caller_org, org_admin, keys, child) = match standing {
        Standing::Unauthenticated => return error(401, "UNAUTHENTICATED"),
        Standing::Killed { .. } => return error(503, "KILL_SWITCH"),
        Standing::Admitted {
            organization,
            org_admin,
            keys,
            child,
        } => (organization, *org_admin, *keys, *child),
    };
    match route {
        Route::NoSuchPath => return error(404, "NOT_FOUND"),
        Route::WrongMethod => return error(405, "METHOD_NOT_ALLOWED"),
        // One level deep (API.md §2.3, §4.3): a child creating a child is 422, whatever its scopes.
        Route::CreateOrganization if child => return invalid("organization"),
        _ => {}
    }
    let holds = match route.scope() {
        None => true,
        Some("org:admin") => org_admin,
        Some(_) => keys,
    };
    if !holds {
        return error(403, "FORBIDDEN_SCOPE");
    }
    if route.takes_org() && !target.org_valid {
        return invalid("orgId");
    }
    if route.takes_key() && !target.key_valid {
        return invalid("keyId");
    }
    if route.own_key() && target.key_owner.as_deref() != Some(caller_org.as_str()) {
        return error(404, "NOT_FOUND");
    }
    if let Some(param) = route.hook_param() {
        if !target.hook.valid {
            return invalid(param);
        }
        if target.hook.owner.as_deref() != Some(caller_org.as_str()) {
            return error(404, "NOT_FOUND");
        }
    }
    if route.takes_org() {
        let Some((id, parent, status)) = &target.org else {
            return error(404, "NOT_FOUND");
        };
        if parent.as_deref() != Some(caller_org.as_str()) {
            return error(404, "NOT_FOUND");
        }
        if route.takes_key() && target.key_owner.as_deref() != Some(id.as_str()) {
            return error(404, "NOT_FOUND");
        }
        if route.refused_when_archived() && *status == Status::Archived {
            return error(409, "CONFLICT");
        }
    }
    Expected::Success(route.success())
}

/// Whether a cell needs a key only the store can make (see the module docs).
fn needs_store(caller: Caller, route: Route, kind: TargetKind) -> bool {
    caller == Caller::PartnerWithoutOrgAdmin
        || (route.own_key()
            && kind == TargetKind::OwnKey
            && matches!(caller, Caller::ParentAdmin | Caller::OtherPartner))
}

// ---------------------------------------------------------------------------------------------
// The server under test, and the world built on it
// ---------------------------------------------------------------------------------------------

/// A minimal client (the `TestApp`'s, for a server that may not be a `TestApp`).
struct Http {
    base: String,
    client: reqwest::Client,
}

/// How the `Authorization` header is sent.
#[derive(Debug, Clone)]
enum Auth {
    Bearer(String),
    Raw(String),
    None,
}

impl Http {
    async fn send(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::Bearer(key) => request.bearer_auth(key),
            Auth::Raw(value) => request.header("authorization", value),
            Auth::None => request,
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// A set-up request that must succeed; its body.
    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let response = self
            .send(method.clone(), path, &Auth::Bearer(key.to_owned()), body)
            .await;
        assert!(
            response.status.is_success(),
            "set-up {method} {path}: {} {}",
            response.status,
            response.body
        );
        response.body
    }

    async fn create_child(&self, parent_key: &str, name: &str) -> String {
        let body = json!({"name": name});
        let created = self
            .call(Method::POST, "/v1/organizations", parent_key, Some(body))
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// (key id, secret)
    async fn mint(&self, parent_key: &str, org: &str, scopes: &[&str]) -> (String, String) {
        let body = json!({"name": "matrix", "scopes": scopes});
        let path = format!("/v1/organizations/{org}/api-keys");
        let minted = self.call(Method::POST, &path, parent_key, Some(body)).await;
        (
            minted["apiKey"]["id"].as_str().unwrap().to_owned(),
            minted["secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// The operator's side of the server under test: what the API cannot do.
enum Operator<'a> {
    App(&'a TestApp),
    Twin(&'a Twin),
}

impl Operator<'_> {
    async fn new_partner(&self, name: &str) -> (String, String) {
        match self {
            Operator::App(app) => app.new_partner(name).await,
            Operator::Twin(twin) => {
                let name = OrganizationName::parse(name).unwrap();
                let (org, minted) = twin
                    .control_plane
                    .create_top_level(name, RateLimitTier::Partner)
                    .await
                    .unwrap();
                (org.id.to_string(), minted.secret.reveal().to_owned())
            }
        }
    }

    async fn suspend_top_level(&self, org: &str) {
        match self {
            Operator::App(app) => app.suspend_top_level(org).await,
            Operator::Twin(twin) => {
                let id = OrganizationId::parse(org).unwrap();
                twin.control_plane.suspend_top_level(id).await.unwrap();
            }
        }
    }

    /// The store of the server under test, when this test can reach it.
    fn store(&self) -> Option<Arc<dyn ApiKeyStore>> {
        match self {
            Operator::App(app) => {
                let url = app.database_url()?;
                let settings = PoolSettings {
                    max_size: 2,
                    ..PoolSettings::default()
                };
                Some(Arc::new(PgStore::connect_lazy(url, settings).unwrap()))
            }
            Operator::Twin(twin) => Some(twin.store.clone() as Arc<dyn ApiKeyStore>),
        }
    }
}

/// Writes a key into the store: a copy of `template` (a key id, found in the store) with another
/// id, name, handle, secret and `scopes` — so in the same organization, with the same tier.
/// Returns (key id, secret).
async fn insert_key(store: &dyn ApiKeyStore, template: &str, scopes: &[Scope]) -> (String, String) {
    let template = store
        .find(ApiKeyId::parse(template).unwrap())
        .await
        .unwrap()
        .expect("the template key is stored");
    let minted = MintedSecret::new(KeyEnv::Live, random_bytes(), random_bytes());
    let key = domain::api_key::ApiKey {
        id: ApiKeyId::from_uuid(uuid::Uuid::new_v4()),
        name: KeyName::parse("written by the security matrix").unwrap(),
        env: minted.env,
        handle: minted.handle.clone(),
        secret_hash: minted.hash.clone(),
        scopes: Scopes::new(scopes.iter().copied()),
        ..template
    };
    let inserted = store.insert(&key, &Trail::none(), None).await.unwrap();
    assert_eq!(inserted, KeyInsert::Inserted);
    (key.id.to_string(), minted.reveal().to_owned())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    for chunk in bytes.chunks_mut(16) {
        let random = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&random.as_bytes()[..chunk.len()]);
    }
    bytes
}

/// A second server on the embedded store, wired the way `server::Application` wires it, over a
/// `MemoryStore` this test holds (see the module docs).
struct Twin {
    base: String,
    admin_key: String,
    admin_org: String,
    control_plane: ControlPlane,
    store: Arc<MemoryStore>,
}

struct AlwaysReady;

#[async_trait::async_trait]
impl Readiness for AlwaysReady {
    async fn is_ready(&self) -> bool {
        true
    }
}

impl Twin {
    async fn spawn() -> Twin {
        let store = Arc::new(MemoryStore::new());
        let control_plane = ControlPlane::new(Ports {
            organizations: store.clone(),
            api_keys: store.clone(),
            credits: store.clone(),
            jobs: store.clone(),
            idempotency: store.clone(),
            audit: store.clone(),
            webhooks: store.clone(),
            sender: Arc::new(adapters_webhook::HttpSender::new(
                adapters_webhook::SenderPolicy {
                    allow_private_urls: true,
                },
            )),
            presenter: Arc::new(adapters_http::WirePresenter),
            clock: Arc::new(server::system::SystemClock),
            random: Arc::new(server::system::OsRandom),
        });
        let name = OrganizationName::parse("twin partner").unwrap();
        let (org, minted) = control_plane
            .create_top_level(name, RateLimitTier::Partner)
            .await
            .unwrap();
        let state = ApiState {
            control_plane: control_plane.clone(),
            readiness: Arc::new(AlwaysReady),
            rate_limiter: Arc::new(adapters_http::RateLimiter::new()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server =
            HttpServer::new(move || App::new().configure(adapters_http::configure(state.clone())))
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
        tokio::spawn(server);
        Twin {
            base: format!("http://127.0.0.1:{port}"),
            admin_key: minted.secret.reveal().to_owned(),
            admin_org: org.id.to_string(),
            control_plane,
            store,
        }
    }
}

/// One server's fixtures: the organizations, the callers' keys, and the shared targets.
struct World {
    http: Http,
    store: Option<Arc<dyn ApiKeyStore>>,
    admin_key: String,
    admin_key_id: String,
    admin_org: String,
    other_partner_key: String,
    other_partner_key_id: String,
    other_partner_org: String,
    child_a: String,
    child_b: String,
    auth: HashMap<Caller, Auth>,
    standing: HashMap<Caller, Standing>,
    /// Keys minted per route for the children's callers, so no key makes many requests of one
    /// class (rate limits, API.md §1.7, are per key and class).
    per_route: HashMap<(Caller, Route), Auth>,
    shared: HashMap<TargetKind, Target>,
    /// Keys no refused request may have changed: (organization, key id).
    protected_keys: Vec<(String, String)>,
    /// A key of child A that stands for the caller's own key where nothing is executed.
    nominal_own_key: String,
    /// A key of child B (for `SiblingsKey`).
    sibling_key_id: String,
    /// Per organization a caller belongs to: its endpoint, a delivery to it, and a key that
    /// manages them.
    hooks: HashMap<String, OwnHook>,
    /// An endpoint (and delivery) of another partner's child: nobody's own.
    foreign_hook: (String, OwnHook),
}

/// An endpoint of an organization, a delivery to it (a test ping), and a key of that
/// organization with `webhooks:read` and `webhooks:write`.
#[derive(Debug, Clone)]
struct OwnHook {
    endpoint: String,
    delivery: String,
    writer: String,
}

impl Http {
    /// A new endpoint of the writer's organization; its id.
    async fn endpoint(&self, writer: &str) -> String {
        let created = self
            .call(
                Method::POST,
                "/v1/webhook-endpoints",
                writer,
                Some(endpoint_body()),
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    async fn own_hook(&self, writer: String) -> OwnHook {
        let endpoint = self.endpoint(&writer).await;
        let path = format!("/v1/webhook-endpoints/{endpoint}/test");
        let ping = self.call(Method::POST, &path, &writer, None).await;
        OwnHook {
            endpoint,
            delivery: ping["id"].as_str().unwrap().to_owned(),
            writer,
        }
    }
}

fn hook_target(path: &str, valid: bool, owner: Option<&str>, endpoint: Option<&str>) -> Target {
    Target {
        org_path: String::new(),
        key_path: String::new(),
        org: None,
        org_valid: true,
        key_valid: true,
        key_owner: None,
        hook: Hook {
            path: path.to_owned(),
            valid,
            owner: owner.map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
        },
    }
}

const UNKNOWN_UUID: &str = "0b0c0d0e-0f10-4112-8314-151617181920";

impl World {
    async fn build(base: &str, admin: &str, admin_org: &str, operator: &Operator<'_>) -> World {
        let http = Http {
            base: base.to_owned(),
            client: reqwest::Client::new(),
        };
        let admin = admin.to_owned();
        let store = operator.store();
        let key_id_of = |whoami: Value| whoami["apiKeyId"].as_str().unwrap().to_owned();
        let admin_key_id = key_id_of(http.call(Method::GET, "/v1/whoami", &admin, None).await);

        let (other_org, other_key) = operator.new_partner("matrix other partner").await;
        let other_key_id = key_id_of(http.call(Method::GET, "/v1/whoami", &other_key, None).await);
        let child_a = http.create_child(&admin, "matrix child A").await;
        let child_b = http.create_child(&admin, "matrix child B").await;
        let (revoked_id, revoked) = http.mint(&admin, &child_a, &["*"]).await;
        let path = format!("/v1/organizations/{child_a}/api-keys/{revoked_id}");
        http.call(Method::DELETE, &path, &admin, None).await;
        let (killed_id, killed_key) = http.mint(&admin, &child_a, &["*"]).await;
        let (_, killer) = http.mint(&admin, &child_a, &["keys:write"]).await;
        let path = format!("/v1/api-keys/{killed_id}/kill");
        http.call(Method::POST, &path, &killer, None).await;
        let archived = http.create_child(&admin, "matrix archived").await;
        let (_, archived_key) = http.mint(&admin, &archived, &["*"]).await;
        let path = format!("/v1/organizations/{archived}");
        http.call(Method::DELETE, &path, &admin, None).await;
        let suspended = http.create_child(&admin, "matrix suspended").await;
        let (_, suspended_key) = http.mint(&admin, &suspended, &["*"]).await;
        let path = format!("/v1/organizations/{suspended}/suspend");
        http.call(Method::POST, &path, &admin, None).await;
        let (down_org, down_key) = operator.new_partner("matrix suspended partner").await;
        let down_child = http
            .create_child(&down_key, "child of a suspended partner")
            .await;
        let (_, down_child_key) = http.mint(&down_key, &down_child, &["*"]).await;
        operator.suspend_top_level(&down_org).await;
        let (sibling_key_id, _) = http.mint(&admin, &child_b, &["credits:read"]).await;
        let (nominal_own_key, _) = http.mint(&admin, &child_a, &["credits:read"]).await;
        let no_admin = match &store {
            Some(store) => Some(insert_key(store.as_ref(), &admin_key_id, &[Scope::AllData]).await),
            None => None,
        };
        // A good key's handle with another secret.
        let wrong_secret = {
            let (_, good) = http.mint(&admin, &child_a, &["*"]).await;
            let (head, secret) = good.split_at(good.len() - 43);
            let other: String = secret
                .chars()
                .map(|c| if c == 'A' { 'B' } else { 'A' })
                .collect();
            format!("{head}{other}")
        };

        let admitted = |organization: &str, org_admin, keys| Standing::Admitted {
            organization: organization.to_owned(),
            org_admin,
            keys,
            child: organization == child_a || organization == child_b,
        };
        let killed = |organization: &str| Standing::Killed {
            organization: organization.to_owned(),
            key: None,
        };
        let bearer = |key: &str| Auth::Bearer(key.to_owned());
        // The children's callers get a key per route (`per_route`, below).
        let mut callers = vec![
            (
                Caller::ParentAdmin,
                bearer(&admin),
                admitted(admin_org, true, true),
            ),
            (
                Caller::ChildKey,
                Auth::None,
                admitted(&child_a, false, true),
            ),
            (
                Caller::SiblingKey,
                Auth::None,
                admitted(&child_b, false, true),
            ),
            (
                Caller::NarrowChildKey,
                Auth::None,
                admitted(&child_a, false, false),
            ),
            (
                Caller::OtherPartner,
                bearer(&other_key),
                admitted(&other_org, true, true),
            ),
            (
                Caller::RevokedKey,
                bearer(&revoked),
                Standing::Unauthenticated,
            ),
            (
                Caller::KilledKey,
                bearer(&killed_key),
                Standing::Killed {
                    organization: child_a.clone(),
                    key: Some(killed_id.clone()),
                },
            ),
            (
                Caller::ArchivedOrgKey,
                bearer(&archived_key),
                Standing::Unauthenticated,
            ),
            (
                Caller::SuspendedOrgKey,
                bearer(&suspended_key),
                killed(&suspended),
            ),
            (
                Caller::SuspendedPartnerKey,
                bearer(&down_key),
                killed(&down_org),
            ),
            (
                Caller::SuspendedPartnersChildKey,
                bearer(&down_child_key),
                killed(&down_org),
            ),
            (
                Caller::MalformedKey,
                bearer("lp_live_not-a-key"),
                Standing::Unauthenticated,
            ),
            (
                Caller::WrongSecret,
                bearer(&wrong_secret),
                Standing::Unauthenticated,
            ),
            (
                Caller::OtherScheme,
                Auth::Raw(format!("Basic {admin}")),
                Standing::Unauthenticated,
            ),
            (Caller::MissingHeader, Auth::None, Standing::Unauthenticated),
        ];
        if let Some((_, key)) = &no_admin {
            let standing = admitted(admin_org, false, true);
            callers.push((Caller::PartnerWithoutOrgAdmin, bearer(key), standing));
        }
        let mut auth = HashMap::new();
        let mut standing = HashMap::new();
        for (caller, a, s) in callers {
            auth.insert(caller, a);
            standing.insert(caller, s);
        }
        // The children's keys: one per route, so that none meets its rate limit.
        let mut per_route = HashMap::new();
        for route in ROUTES {
            for (caller, child, scopes) in [
                (Caller::ChildKey, &child_a, "*"),
                (Caller::SiblingKey, &child_b, "*"),
                (Caller::NarrowChildKey, &child_a, "credits:read"),
            ] {
                let (_, key) = http.mint(&admin, child, &[scopes]).await;
                per_route.insert((caller, route), Auth::Bearer(key));
            }
        }

        // Webhooks: an endpoint and a delivery per organization of the callers, and a foreign one.
        let hook_writer = |org: String| {
            let http = &http;
            let admin = &admin;
            async move {
                let scopes = ["webhooks:read", "webhooks:write"];
                http.mint(admin, &org, &scopes).await.1
            }
        };
        let mut hooks = HashMap::new();
        for (org, writer) in [
            (admin_org.to_owned(), admin.clone()),
            (child_a.clone(), hook_writer(child_a.clone()).await),
            (child_b.clone(), hook_writer(child_b.clone()).await),
            (other_org.clone(), other_key.clone()),
        ] {
            hooks.insert(org, http.own_hook(writer).await);
        }
        let foreign_org = http.create_child(&other_key, "matrix foreign hooks").await;
        let (_, foreign_writer) = http
            .mint(
                &other_key,
                &foreign_org,
                &["webhooks:read", "webhooks:write"],
            )
            .await;
        let foreign_hook = (foreign_org, http.own_hook(foreign_writer).await);

        let mut world = World {
            http,
            store,
            admin_key: admin,
            admin_key_id,
            admin_org: admin_org.to_owned(),
            other_partner_key: other_key,
            other_partner_key_id: other_key_id,
            other_partner_org: other_org,
            protected_keys: vec![
                (child_b.clone(), sibling_key_id.clone()),
                (child_a.clone(), nominal_own_key.clone()),
            ],
            child_a,
            child_b,
            auth,
            standing,
            per_route,
            shared: HashMap::new(),
            nominal_own_key,
            sibling_key_id,
            hooks,
            foreign_hook,
        };
        for kind in ORG_TARGETS.into_iter().chain(KEY_TARGETS) {
            if kind != TargetKind::CallerItself {
                let target = world.target(kind).await;
                world.shared.insert(kind, target);
            }
        }
        let foreign = world.shared[&TargetKind::OtherPartnersChild].clone();
        world.shared.insert(TargetKind::ForeignKey, foreign);
        let (foreign_org, foreign) = world.foreign_hook.clone();
        let (org, endpoint) = (Some(foreign_org.as_str()), Some(foreign.endpoint.as_str()));
        let unknown_endpoint = format!("whe_{UNKNOWN_UUID}");
        let unknown_delivery = format!("whd_{UNKNOWN_UUID}");
        for (kind, target) in [
            (
                TargetKind::ForeignEndpoint,
                hook_target(&foreign.endpoint, true, org, endpoint),
            ),
            (
                TargetKind::UnknownEndpoint,
                hook_target(&unknown_endpoint, true, None, None),
            ),
            (
                TargetKind::MalformedEndpointId,
                hook_target("whe_not-a-uuid", false, None, None),
            ),
            (
                TargetKind::KeyIdAsEndpointId,
                hook_target(&world.nominal_own_key, false, None, None),
            ),
            (
                TargetKind::ForeignDelivery,
                hook_target(&foreign.delivery, true, org, endpoint),
            ),
            (
                TargetKind::UnknownDelivery,
                hook_target(&unknown_delivery, true, None, None),
            ),
            (
                TargetKind::MalformedDeliveryId,
                hook_target("whd_not-a-uuid", false, None, None),
            ),
            (
                TargetKind::EndpointIdAsDeliveryId,
                hook_target(&foreign.endpoint, false, None, None),
            ),
        ] {
            world.shared.insert(kind, target);
        }
        world
    }

    /// A new target of `kind` (for `CallerItself` and `OwnKey`, see [`World::resolve`]).
    async fn target(&self, kind: TargetKind) -> Target {
        let admin = &self.admin_key;
        let child = |org: String, parent: &str, status, key: String| Target {
            org_path: org.clone(),
            key_path: key,
            org: Some((org.clone(), Some(parent.to_owned()), status)),
            org_valid: true,
            key_valid: true,
            key_owner: Some(org),
            hook: Hook::default(),
        };
        match kind {
            TargetKind::ActiveChild
            | TargetKind::MalformedKeyId
            | TargetKind::OrganizationIdAsKeyId
            | TargetKind::SiblingsKey
            | TargetKind::UnknownKey => {
                let org = self.http.create_child(admin, "matrix target").await;
                let (key, _) = self.http.mint(admin, &org, &["credits:read"]).await;
                let mut target = child(org.clone(), &self.admin_org, Status::Active, key);
                match kind {
                    TargetKind::MalformedKeyId => {
                        target.key_path = "key_not-a-uuid".to_owned();
                        target.key_valid = false;
                    }
                    TargetKind::OrganizationIdAsKeyId => {
                        target.key_path = org.clone();
                        target.key_valid = false;
                    }
                    TargetKind::SiblingsKey => {
                        target.key_path = self.sibling_key_id.clone();
                        target.key_owner = Some(self.child_b.clone());
                    }
                    TargetKind::UnknownKey => {
                        target.key_path = format!("key_{UNKNOWN_UUID}");
                        target.key_owner = None;
                    }
                    _ => {}
                }
                target
            }
            TargetKind::ActiveChildBareUppercase => {
                let org = self.http.create_child(admin, "matrix target").await;
                let (key, _) = self.http.mint(admin, &org, &["credits:read"]).await;
                let mut target = child(org.clone(), &self.admin_org, Status::Active, key);
                target.org_path = org.trim_start_matches("org_").to_uppercase();
                target
            }
            TargetKind::SuspendedChild => {
                let org = self.http.create_child(admin, "matrix target").await;
                let (key, _) = self.http.mint(admin, &org, &["credits:read"]).await;
                let path = format!("/v1/organizations/{org}/suspend");
                self.http.call(Method::POST, &path, admin, None).await;
                child(org, &self.admin_org, Status::Suspended, key)
            }
            TargetKind::ArchivedChild => {
                let org = self.http.create_child(admin, "matrix target").await;
                let (key, _) = self.http.mint(admin, &org, &["credits:read"]).await;
                let path = format!("/v1/organizations/{org}");
                self.http.call(Method::DELETE, &path, admin, None).await;
                child(org, &self.admin_org, Status::Archived, key)
            }
            TargetKind::OtherPartnersChild | TargetKind::ForeignKey => {
                let other = &self.other_partner_key;
                let org = self.http.create_child(other, "matrix target").await;
                let (key, _) = self.http.mint(other, &org, &["credits:read"]).await;
                child(org, &self.other_partner_org, Status::Active, key)
            }
            TargetKind::UnknownOrganization => Target {
                org_path: format!("org_{UNKNOWN_UUID}"),
                key_path: format!("key_{UNKNOWN_UUID}"),
                org: None,
                org_valid: true,
                key_valid: true,
                key_owner: None,
                hook: Hook::default(),
            },
            TargetKind::MalformedOrganizationId | TargetKind::KeyIdAsOrganizationId => Target {
                org_path: if kind == TargetKind::MalformedOrganizationId {
                    "org_not-a-uuid".to_owned()
                } else {
                    let active = &self.shared[&TargetKind::ActiveChild].org_path;
                    active.replacen("org_", "key_", 1)
                },
                key_path: format!("key_{UNKNOWN_UUID}"),
                org: None,
                org_valid: false,
                key_valid: true,
                key_owner: None,
                hook: Hook::default(),
            },
            TargetKind::Nothing
            | TargetKind::CallerItself
            | TargetKind::OwnKey
            | TargetKind::OwnEndpoint
            | TargetKind::OwnDelivery => {
                unreachable!("resolved per caller")
            }
            TargetKind::ForeignEndpoint
            | TargetKind::UnknownEndpoint
            | TargetKind::MalformedEndpointId
            | TargetKind::KeyIdAsEndpointId
            | TargetKind::ForeignDelivery
            | TargetKind::UnknownDelivery
            | TargetKind::MalformedDeliveryId
            | TargetKind::EndpointIdAsDeliveryId => self.shared[&kind].clone(),
        }
    }

    /// The caller's own organization, as the parent it is not.
    fn own_org(&self, caller: Caller) -> (String, Option<String>) {
        match caller {
            Caller::ChildKey | Caller::NarrowChildKey | Caller::RevokedKey => {
                (self.child_a.clone(), Some(self.admin_org.clone()))
            }
            Caller::SiblingKey => (self.child_b.clone(), Some(self.admin_org.clone())),
            Caller::OtherPartner => (self.other_partner_org.clone(), None),
            _ => (self.admin_org.clone(), None),
        }
    }

    /// The target of `kind` for `caller`: shared, or resolved per caller; `fresh` when the cell
    /// will change it.
    async fn resolve(&self, caller: Caller, kind: TargetKind, fresh: bool) -> Target {
        let bare = |org: String, key: String, key_owner: String| Target {
            org_path: org,
            key_path: key,
            org: None,
            org_valid: true,
            key_valid: true,
            key_owner: Some(key_owner),
            hook: Hook::default(),
        };
        match kind {
            TargetKind::Nothing => bare(String::new(), String::new(), String::new()),
            TargetKind::CallerItself => {
                let (org, parent) = self.own_org(caller);
                Target {
                    org_path: org.clone(),
                    key_path: format!("key_{UNKNOWN_UUID}"),
                    org: Some((org, parent, Status::Active)),
                    org_valid: true,
                    key_valid: true,
                    key_owner: None,
                    hook: Hook::default(),
                }
            }
            TargetKind::OwnKey => {
                let (org, _) = self.own_org(caller);
                if !fresh {
                    return bare(org.clone(), self.nominal_own_key.clone(), org);
                }
                let key = match caller {
                    Caller::ParentAdmin | Caller::PartnerWithoutOrgAdmin | Caller::OtherPartner => {
                        let template = if caller == Caller::OtherPartner {
                            &self.other_partner_key_id
                        } else {
                            &self.admin_key_id
                        };
                        let store = self.store.as_ref().expect("cells that need the store");
                        insert_key(store.as_ref(), template, &[Scope::CreditsRead])
                            .await
                            .0
                    }
                    _ => {
                        self.http
                            .mint(&self.admin_key, &org, &["credits:read"])
                            .await
                            .0
                    }
                };
                bare(org.clone(), key, org)
            }
            TargetKind::OwnEndpoint | TargetKind::OwnDelivery => {
                let (org, _) = self.own_org(caller);
                let hook = &self.hooks[&org];
                let endpoint = if fresh {
                    self.http.endpoint(&hook.writer).await
                } else {
                    hook.endpoint.clone()
                };
                let path = if kind == TargetKind::OwnEndpoint {
                    &endpoint
                } else {
                    &hook.delivery
                };
                hook_target(path, true, Some(&org), Some(&endpoint))
            }
            _ if fresh => self.target(kind).await,
            _ => self.shared[&kind].clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

async fn every_route_answers_every_caller_in_the_contracts_order_of_checks(app: TestApp) {
    let operator = Operator::App(&app);
    let world = World::build(&app.base, &app.admin_key, &app.admin_org, &operator).await;
    let cells = if world.store.is_some() {
        run(&world, |_, _, _| true).await
    } else {
        // The embedded store of a TestApp is out of reach: what needs it runs on a twin.
        let cells = run(&world, |c, r, t| !needs_store(c, r, t)).await;
        let twin = Twin::spawn().await;
        let operator = Operator::Twin(&twin);
        let world = World::build(&twin.base, &twin.admin_key, &twin.admin_org, &operator).await;
        cells + run(&world, needs_store).await
    };
    // 16 callers × (9 routes without a target + 7 org routes × 9 targets + 2 org-and-key routes
    // × 13 + 2 own-key routes × 5 + 6 webhook routes × 5).
    assert_eq!(
        cells,
        CALLERS.len() * (9 + 7 * 9 + 2 * 13 + 2 * 5 + 6 * 5),
        "every cell ran"
    );
}

/// Runs the cells `select` picks; returns how many ran. All failures are collected and reported
/// together, so one run shows the whole picture.
async fn run(world: &World, select: impl Fn(Caller, Route, TargetKind) -> bool) -> usize {
    let mut failures = Vec::new();
    let mut messages_401 = HashMap::new();
    let mut cells = 0;
    for caller in CALLERS {
        for route in ROUTES {
            for kind in route.targets() {
                if !select(caller, route, kind) {
                    continue;
                }
                cells += 1;
                let standing = &world.standing[&caller];
                let nominal = world.resolve(caller, kind, false).await;
                let expected = expect(route, standing, &nominal);
                let fresh = matches!(expected, Expected::Success(_)) && route.mutates();
                let target = if fresh {
                    world.resolve(caller, kind, true).await
                } else {
                    nominal
                };
                let auth = world
                    .per_route
                    .get(&(caller, route))
                    .unwrap_or(&world.auth[&caller]);
                let path = route.path(&target);
                let response = world
                    .http
                    .send(route.method(), &path, auth, route.body())
                    .await;
                let cell = format!("{caller:?} × {} {path} ({kind:?})", route.method());
                if let Err(why) = check(route, standing, &target, &expected, &response) {
                    failures.push(format!(
                        "{cell}: expected {expected:?}, got {} {} — {why}",
                        response.status, response.body
                    ));
                }
                if response.status == 401 {
                    let message = response.body["error"]["message"].to_string();
                    messages_401.entry(message).or_insert(cell);
                }
            }
        }
    }
    if messages_401.len() > 1 {
        failures.push(format!(
            "every 401 must carry one and the same message (API.md §2.1), got: {messages_401:?}"
        ));
    }
    failures.extend(untouched(world).await);
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cells
}

/// The answer of one cell against what it must be, with the details each status promises.
fn check(
    route: Route,
    standing: &Standing,
    target: &Target,
    expected: &Expected,
    response: &Response,
) -> Result<(), String> {
    let request_id = response
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Request-Id")?;
    let body = &response.body;
    let expected = match expected {
        Expected::Success(status) => {
            return check_success(route, standing, target, *status, response)
        }
        Expected::Error {
            status,
            code,
            field,
        } => (*status, *code, *field),
    };
    let (status, code, field) = expected;
    if response.status.as_u16() != status || body["error"]["code"] != code {
        return Err("wrong status or code".to_owned());
    }
    if body["error"]["requestId"] != request_id {
        return Err("requestId differs from X-Request-Id".to_owned());
    }
    let details = &body["error"]["details"];
    if !details.is_object() || body["error"]["message"].as_str().is_none_or(str::is_empty) {
        return Err("not the error envelope".to_owned());
    }
    match (status, standing) {
        (403, _) if details["requiredScope"] != route.scope().unwrap_or_default() => {
            Err(format!("details.requiredScope must be {:?}", route.scope()))
        }
        (503, Standing::Killed { organization, key }) => {
            let scope = if key.is_some() { "key" } else { "organization" };
            if details["scope"] != scope || details["organizationId"] != **organization {
                return Err(format!(
                    "kill-switch details must name {scope} {organization}"
                ));
            }
            if key.is_some() && details["apiKeyId"] != json!(key) {
                return Err(format!("kill-switch details must name the key {key:?}"));
            }
            assert_z_time(&details["suspendedAt"]);
            Ok(())
        }
        (422, _) if details["fields"][0]["field"] != field.unwrap_or_default() => {
            Err(format!("details.fields[0].field must be {field:?}"))
        }
        (409, _) => {
            let (id, ..) = target.org.as_ref().ok_or("409 without an organization")?;
            if details["organizationId"] != **id || details["status"] != "archived" {
                return Err("conflict details must name the org and its status".to_owned());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_success(
    route: Route,
    standing: &Standing,
    target: &Target,
    status: u16,
    response: &Response,
) -> Result<(), String> {
    if response.status.as_u16() != status {
        return Err("wrong status".to_owned());
    }
    let Standing::Admitted { organization, .. } = standing else {
        return Err("success for a caller that is not admitted".to_owned());
    };
    let body = &response.body;
    let org_id = target
        .org
        .as_ref()
        .map(|(id, ..)| id.as_str())
        .unwrap_or_default();
    let key_id = target.key_path.as_str();
    let hook = target.hook.path.as_str();
    let hook_endpoint = target.hook.endpoint.as_deref().unwrap_or_default();
    let all = |items: &Value, field: &str, value: &str| {
        items
            .as_array()
            .is_some_and(|items| items.iter().all(|item| item[field] == value))
    };
    let ok = match route {
        Route::Whoami => body["organizationId"] == **organization,
        Route::CreateOrganization => {
            body["parentOrganizationId"] == **organization && body["status"] == "active"
        }
        Route::ListOrganizations => all(&body["items"], "parentOrganizationId", organization),
        Route::GetOrganization => body["id"] == org_id && body["summary"].is_object(),
        Route::PatchOrganization => {
            body["id"] == org_id && body["metadata"]["touchedBy"] == "matrix"
        }
        Route::ArchiveOrganization => body["id"] == org_id && body["status"] == "archived",
        Route::Suspend => body["id"] == org_id && body["status"] == "suspended",
        Route::Resume => body["id"] == org_id && body["status"] == "active",
        Route::MintKey => {
            body["apiKey"]["organizationId"] == org_id
                && body["secret"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("lp_"))
        }
        Route::ListKeys => all(&body["items"], "organizationId", org_id),
        Route::RevokeKey => {
            body["deleted"] == true
                && body["apiKey"]["id"] == key_id
                && body["apiKey"]["status"] == "revoked"
        }
        Route::RotateChildKey => {
            body["previous"]["id"] == key_id
                && body["apiKey"]["id"] != key_id
                && body["previous"]["supersededBy"] == body["apiKey"]["id"]
                && body["secret"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("lp_"))
        }
        Route::ListOwnKeys => all(&body["items"], "organizationId", organization),
        Route::KillOwnKey => body["killed"] == true && body["apiKey"]["id"] == key_id,
        Route::RotateOwnKey => {
            body["apiKey"]["id"] == key_id
                && body["secret"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("lp_"))
        }
        Route::CreateEndpoint => {
            body["url"] == ENDPOINT_URL
                && body["scope"] == "own"
                && body["signingSecret"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("whsec_"))
        }
        Route::ListEndpoints => body["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|e| e.get("signingSecret").is_none())),
        Route::GetEndpoint => body["id"] == hook && body.get("signingSecret").is_none(),
        Route::PatchEndpoint => {
            body["id"] == hook && body["description"] == "touched by the matrix"
        }
        Route::DeleteEndpoint => *body == json!({"id": hook, "deleted": true}),
        Route::ListDeliveries => all(&body["items"], "endpointId", hook),
        Route::TestEndpoint => body["endpointId"] == hook && body["eventType"] == "test.ping",
        Route::ReplayDelivery => {
            body["endpointId"] == hook_endpoint
                && body["id"] != hook
                && body["eventType"] == "test.ping"
        }
        Route::AuditLog => all(&body["items"], "organizationId", organization),
        Route::NoSuchPath | Route::WrongMethod => false,
    };
    if ok {
        Ok(())
    } else {
        Err("unexpected body".to_owned())
    }
}

/// The shared targets after every refused request: unchanged, and their keys still in the state
/// they were left in. Returns what differs.
async fn untouched(world: &World) -> Vec<String> {
    let mut differences = Vec::new();
    let owner_key = |parent: &str| {
        Auth::Bearer(if parent == world.admin_org {
            world.admin_key.clone()
        } else {
            world.other_partner_key.clone()
        })
    };
    for (kind, target) in &world.shared {
        let Some((id, Some(parent), status)) = &target.org else {
            continue;
        };
        let path = format!("/v1/organizations/{id}");
        let read = world
            .http
            .send(Method::GET, &path, &owner_key(parent), None)
            .await;
        let want = match status {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Archived => "archived",
        };
        if read.body["status"] != want || read.body["metadata"] != json!({}) {
            differences.push(format!("shared target {kind:?} was changed: {}", read.body));
        }
        let path = format!("/v1/organizations/{id}/api-keys");
        let keys = world
            .http
            .send(Method::GET, &path, &owner_key(parent), None)
            .await;
        let want = if *status == Status::Archived {
            "revoked"
        } else {
            "active"
        };
        let items = keys.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() != 1 || items.iter().any(|k| k["status"] != want) {
            differences.push(format!(
                "keys of shared target {kind:?} changed: {}",
                keys.body
            ));
        }
    }
    let mut hooks: Vec<&OwnHook> = world.hooks.values().collect();
    hooks.push(&world.foreign_hook.1);
    for hook in hooks {
        let path = format!("/v1/webhook-endpoints/{}", hook.endpoint);
        let auth = Auth::Bearer(hook.writer.clone());
        let read = world.http.send(Method::GET, &path, &auth, None).await;
        if read.status != 200
            || read.body["status"] != "enabled"
            || !read.body["description"].is_null()
        {
            differences.push(format!(
                "the endpoint {} was changed: {}",
                hook.endpoint, read.body
            ));
        }
    }
    for (org, key) in &world.protected_keys {
        let path = format!("/v1/organizations/{org}/api-keys?limit=100");
        let auth = Auth::Bearer(world.admin_key.clone());
        let keys = world.http.send(Method::GET, &path, &auth, None).await;
        let items = keys.body["items"].as_array().cloned().unwrap_or_default();
        let found = items.iter().find(|k| k["id"] == **key);
        if found.is_none_or(|k| k["status"] != "active" || !k["supersededBy"].is_null()) {
            differences.push(format!("the protected key {key} was changed: {found:?}"));
        }
    }
    differences
}
