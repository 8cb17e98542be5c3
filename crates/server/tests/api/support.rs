//! Spawning a server for one test, and a small HTTP client for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use adapters_pg::testing::TestDatabase;
use domain::api_key::{KeyEnv, MintedSecret, RateLimitTier};
use domain::organization::OrganizationName;
use domain::ports::Clock;
use domain::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server::{Application, Config};

/// Generates, for each listed test function `async fn name(app: TestApp)`, one `#[tokio::test]`
/// per store.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestApp::spawn($crate::support::Store::Memory).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestApp::spawn($crate::support::Store::Postgres).await).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy)]
pub enum Store {
    Memory,
    /// A fresh PostgreSQL database of the test's own.
    Postgres,
}

pub struct TestApp {
    pub base: String,
    /// The bootstrap partner's admin key (scopes `*` and `org:admin`).
    pub admin_key: String,
    pub admin_org: String,
    control_plane: domain::use_cases::ControlPlane,
    client: reqwest::Client,
    /// Keeps the test's database alive as long as the test; dropping it drops the database.
    database: Option<TestDatabase>,
    /// The server's clock: real time plus whatever the test moved it by.
    pub clock: Arc<TestClock>,
}

/// Real time, shifted by what the test says: time moves without sleeping.
#[derive(Default)]
pub struct TestClock {
    offset_micros: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, by: time::Duration) {
        let micros = i64::try_from(by.whole_microseconds()).unwrap();
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let shifted = time::OffsetDateTime::now_utc()
            + time::Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        Timestamp::from_offset_datetime(shifted)
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    /// Asserts an error envelope with this status and code, and returns its `details`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{}", self.body);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["details"].is_object());
        let header = self.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_eq!(error["requestId"], header);
        &error["details"]
    }

    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        &self.body
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        server::telemetry::init(
            server::config::LogFormat::Text,
            &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
    });
}

/// The configuration of the suite's servers: the defaults, two HTTP workers, and webhooks allowed
/// to local receivers (`WEBHOOKS_ALLOW_PRIVATE_URLS=true`: the tests deliver to 127.0.0.1).
pub fn test_config() -> Config {
    Config {
        http_workers: Some(2),
        webhooks_allow_private_urls: true,
        ..Config::embedded()
    }
}

impl TestApp {
    pub async fn spawn(store: Store) -> TestApp {
        let mut config = test_config();
        let database = match store {
            Store::Memory => None,
            Store::Postgres => {
                let database = TestDatabase::create().await.expect("a test database");
                config.database_url = Some(database.url().to_owned());
                config.bootstrap_admin_key = Some(random_key());
                config.database_pool_size = 4;
                Some(database)
            }
        };
        let mut app = Self::start(config).await;
        app.database = database;
        app
    }

    /// A server on `config`, whose store outlives it (another server's database, say).
    pub async fn start(config: Config) -> TestApp {
        init_logs();
        let clock = Arc::new(TestClock::default());
        let app = Application::build_with_clock(config.clone(), clock.clone())
            .await
            .expect("the server starts");
        let admin_key = match &config.bootstrap_admin_key {
            Some(key) => key.clone(),
            None => app
                .generated_admin_key()
                .expect("a generated admin key")
                .to_owned(),
        };
        let control_plane = app.control_plane().clone();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let mut test_app = TestApp {
            base,
            admin_key,
            admin_org: String::new(),
            control_plane,
            client: reqwest::Client::new(),
            database: None,
            clock,
        };
        let whoami = test_app
            .get("/v1/whoami", &test_app.admin_key.clone())
            .await;
        test_app.admin_org = whoami.body["organizationId"].as_str().unwrap().to_owned();
        test_app
    }

    /// A second server on this test's PostgreSQL database, with a pool of its own and the same
    /// bootstrap key: what another process would be.
    pub async fn another_server(&self) -> TestApp {
        let mut config = test_config();
        config.database_url = self.database_url().map(str::to_owned);
        config.bootstrap_admin_key = Some(self.admin_key.clone());
        config.database_pool_size = 4;
        config.http_workers = Some(1);
        TestApp::start(config).await
    }

    /// The URL of this test's PostgreSQL database (`None` on the embedded store).
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(TestDatabase::url)
    }

    /// Another top-level partner organization, as the operator would create it: (org id, admin key).
    pub async fn new_partner(&self, name: &str) -> (String, String) {
        let (org, minted) = self
            .control_plane
            .create_top_level(
                OrganizationName::parse(name).unwrap(),
                RateLimitTier::Partner,
            )
            .await
            .unwrap();
        (org.id.to_string(), minted.secret.reveal().to_owned())
    }

    /// The use cases the server runs on (operator actions, flushing key usage).
    pub fn control_plane(&self) -> &domain::use_cases::ControlPlane {
        &self.control_plane
    }

    /// The operator funds a top-level organization.
    pub async fn grant(&self, org: &str, credits: i64) {
        let id = domain::OrganizationId::parse(org).unwrap();
        self.control_plane
            .grant_credits(id, credits, None)
            .await
            .unwrap();
    }

    /// The bootstrap partner moves `credits` to its child `child` (`201` expected).
    pub async fn allocate(&self, child: &str, credits: i64) {
        self.request_with_headers(
            Method::POST,
            &format!("/v1/organizations/{child}/credits/allocate"),
            Some(&self.admin_key),
            Some(json!({ "credits": credits })),
            &[("Idempotency-Key", &uuid::Uuid::new_v4().to_string())],
        )
        .await
        .assert_ok(201);
    }

    /// The server's OpenAPI document (`GET /openapi.json`, no key needed).
    pub async fn openapi(&self) -> Value {
        reqwest::get(format!("{}/openapi.json", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The server's clock now (real time plus what the test moved it by).
    pub fn clock_now(&self) -> time::OffsetDateTime {
        self.clock.now().as_offset_datetime()
    }

    /// The operator's platform-level kill switch on a top-level organization.
    pub async fn suspend_top_level(&self, org: &str) {
        let id = domain::OrganizationId::parse(org).unwrap();
        self.control_plane.suspend_top_level(id).await.unwrap();
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        self.request_with_headers(method, path, key, body, &[])
            .await
    }

    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        assert!(
            headers.contains_key("x-request-id"),
            "every response carries X-Request-Id"
        );
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

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(Method::GET, path, Some(key), None).await
    }

    /// A POST with no body and no Content-Type, as `curl -X POST` sends it.
    pub async fn post_empty(&self, path: &str, key: &str) -> Response {
        self.request(Method::POST, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(key), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    /// Creates a child of the bootstrap partner; returns its id.
    pub async fn create_child(&self, name: &str) -> String {
        self.create_child_of(&self.admin_key, name).await
    }

    pub async fn create_child_of(&self, parent_key: &str, name: &str) -> String {
        let response = self
            .post("/v1/organizations", parent_key, json!({"name": name}))
            .await;
        response.assert_ok(201)["id"].as_str().unwrap().to_owned()
    }

    /// Mints a key for a child of the bootstrap partner; returns (key id, secret).
    pub async fn mint_key(&self, org: &str, scopes: &[&str]) -> (String, String) {
        let response = self
            .post(
                &format!("/v1/organizations/{org}/api-keys"),
                &self.admin_key,
                json!({"name": "k", "scopes": scopes}),
            )
            .await;
        let body = response.assert_ok(201);
        (
            body["apiKey"]["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// A fresh key string in the contract's format, as an operator would choose one.
pub fn random_key() -> String {
    let handle: [u8; 10] = uuid::Uuid::new_v4().as_bytes()[..10].try_into().unwrap();
    let mut secret = [0u8; 32];
    secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    MintedSecret::new(KeyEnv::Live, handle, secret)
        .reveal()
        .to_owned()
}

/// `2026-06-01T14:30:00.000000+00:00`
#[track_caller]
pub fn assert_org_time(value: &Value) {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let ok = s.len() == 32
        && s.ends_with("+00:00")
        && s.as_bytes()[10] == b'T'
        && s.as_bytes()[19] == b'.'
        && s[20..26].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "not in the organization format: {s}");
}

/// `2026-06-03T18:14:02.187Z`
#[track_caller]
pub fn assert_z_time(value: &Value) {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let ok = s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..23].bytes().all(|b| b.is_ascii_digit());
    assert!(ok, "not in the Z format: {s}");
}
