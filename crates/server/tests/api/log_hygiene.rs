//! Log hygiene (API.md §10: "never a secret or a full key"): the real `server` binary, with
//! `LOG_FORMAT=json`, its standard output and error captured whole, while keys are minted, used,
//! misused (wrong secret, other scheme, sent in the path, the query and the body), revoked and
//! refused by the kill switch. No full key string and no part of any secret may appear in what the
//! process writes; the key prefix `lp_<env>_<handle>` may.
//!
//! Strict on purpose: every 12-character window of every secret is searched for (72 random bits,
//! so a chance match is out of the question), which also catches a truncated or partial leak.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use adapters_pg::testing::TestDatabase;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::random_key;

/// The `server` binary with both output streams captured.
struct Captured {
    child: Child,
    base: String,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Captured {
    fn spawn(envs: &[(&str, &str)]) -> Captured {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_remove("BOOTSTRAP_ADMIN_KEY")
            .env_remove("DATABASE_URL")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("HTTP_WORKERS", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut stream in streams {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            }));
        }
        Captured {
            child,
            base: format!("http://127.0.0.1:{port}"),
            output,
            readers,
        }
    }

    async fn ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server never became ready; it wrote:\n{}",
                String::from_utf8_lossy(&self.output.lock().unwrap())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process (SIGTERM, so it flushes and exits as in production; SIGKILL after 15 s)
    /// and returns everything it wrote.
    fn finish(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let output = self.output.lock().unwrap();
        String::from_utf8_lossy(&output).into_owned()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn bearer(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.send(method, path, Some(&format!("Bearer {key}")), body)
            .await
    }
}

/// Every key string used during a run, so the log can be searched for each.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, key: &str) -> String {
        self.0.push(key.to_owned());
        key.to_owned()
    }

    /// Where the output shows a key, a secret, or any 12 characters of a secret.
    fn leaks(&self, output: &str) -> Vec<String> {
        let mut found = Vec::new();
        for key in &self.0 {
            if output.contains(key.as_str()) {
                found.push(format!("the full key {}…", &key[..key.len() - 43]));
            }
            let secret = &key[key.len().saturating_sub(43)..];
            for start in 0..=secret.len().saturating_sub(12) {
                let window = &secret[start..start + 12];
                if let Some(line) = output.lines().find(|line| line.contains(window)) {
                    let shown: String = line.chars().take(400).collect();
                    found.push(format!(
                        "12 characters of the secret of {}… in: {shown}",
                        &key[..key.len() - 43]
                    ));
                    break;
                }
            }
        }
        found
    }
}

/// Mints, uses, misuses, revokes, suspends and archives; returns every key string it used.
async fn exercise(client: &Client, admin: &str) -> Secrets {
    let mut secrets = Secrets::default();
    secrets.add(admin);
    let (status, whoami) = client.bearer(Method::GET, "/v1/whoami", admin, None).await;
    assert_eq!(status, 200, "{whoami}");

    let (status, child) = client
        .bearer(
            Method::POST,
            "/v1/organizations",
            admin,
            Some(json!({"name": "hygiene"})),
        )
        .await;
    assert_eq!(status, 201, "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for (name, env) in [("first", "live"), ("second", "test"), ("third", "live")] {
        let (status, minted) = client
            .bearer(
                Method::POST,
                &format!("/v1/organizations/{child}/api-keys"),
                admin,
                Some(json!({"name": name, "scopes": ["*"], "env": env})),
            )
            .await;
        assert_eq!(status, 201, "{minted}");
        let secret = secrets.add(minted["secret"].as_str().unwrap());
        keys.push((minted["apiKey"]["id"].as_str().unwrap().to_owned(), secret));
    }
    let (first_id, first) = &keys[0];
    let (_, second) = &keys[1];
    let (_, third) = &keys[2];

    // Used well, and refused for scope.
    for key in [first, second] {
        assert_eq!(
            client.bearer(Method::GET, "/v1/whoami", key, None).await.0,
            200
        );
        assert_eq!(
            client
                .bearer(Method::GET, "/v1/organizations", key, None)
                .await
                .0,
            403
        );
    }
    // Misused: a wrong secret, another scheme, no scheme, the key where it does not belong.
    let wrong = secrets.add(&format!("{}{}", &first[..first.len() - 43], "A".repeat(43)));
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", &wrong, None)
            .await
            .0,
        401
    );
    for header in [
        format!("Basic {first}"),
        first.clone(),
        format!("Bearer  {first} x"),
    ] {
        let (status, _) = client
            .send(Method::GET, "/v1/whoami", Some(&header), None)
            .await;
        assert_eq!(status, 401, "{header:?}");
    }
    let probes = [
        (Method::GET, format!("/v1/organizations/{first}"), None),
        (
            Method::GET,
            format!("/v1/organizations?cursor={first}"),
            None,
        ),
        (Method::GET, format!("/v1/organizations?{first}=1"), None),
        (Method::GET, format!("/v1/{first}"), None),
        (
            Method::DELETE,
            format!("/v1/organizations/{child}/api-keys/{first}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/api-keys"),
            Some(json!({"name": "x", "scopes": [first]})),
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/api-keys"),
            Some(json!({"name": "x", "scopes": ["*"], "env": first})),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{child}"),
            Some(json!({"metadata": {"leak": first}, "billingEmail": first})),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{child}"),
            Some(json!({ first.as_str(): 1 })),
        ),
        (
            Method::POST,
            "/v1/organizations".to_owned(),
            Some(json!({"name": first, "metadata": {first.as_str(): "x"}})),
        ),
        (
            Method::POST,
            format!("/v1/organizations/{child}/suspend"),
            Some(json!({"reason": first.repeat(10)})),
        ),
    ];
    for (method, path, body) in probes {
        let (status, answer) = client.bearer(method.clone(), &path, admin, body).await;
        assert!(status < 500, "{method} {path}: {status} {answer}");
    }
    // The key lifecycle: a mint replayed through an Idempotency-Key, a child key rotated by its
    // parent, a key rotated in place by itself, a key killed by another of its organization.
    let mint = |idempotency: &'static str| {
        let path = format!("/v1/organizations/{child}/api-keys");
        let body = json!({"name": "replayed", "scopes": ["*"]});
        let request = client
            .http
            .post(format!("{}{path}", client.base))
            .bearer_auth(admin)
            .header("idempotency-key", idempotency)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
            response.json::<Value>().await.unwrap()
        }
    };
    let minted = mint("6f1c2a8e-1b2c-4d3e-8f90-0a1b2c3d4e5f").await;
    let replayed = mint("6f1c2a8e-1b2c-4d3e-8f90-0a1b2c3d4e5f").await;
    assert_eq!(minted["secret"], replayed["secret"], "a replay is verbatim");
    let fourth = secrets.add(minted["secret"].as_str().unwrap());
    let fourth_id = minted["apiKey"]["id"].as_str().unwrap().to_owned();
    let second_id = &keys[1].0;
    let path = format!("/v1/organizations/{child}/api-keys/{second_id}/rotate");
    let (status, rotated) = client.bearer(Method::POST, &path, admin, None).await;
    assert_eq!(status, 201, "{rotated}");
    let fifth = secrets.add(rotated["secret"].as_str().unwrap());
    let fifth_id = rotated["apiKey"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/api-keys/{fourth_id}/rotate");
    let (status, in_place) = client.bearer(Method::POST, &path, &fourth, None).await;
    assert_eq!(status, 200, "{in_place}");
    let sixth = secrets.add(in_place["secret"].as_str().unwrap());
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", &fourth, None)
            .await
            .0,
        401
    );
    let path = format!("/v1/api-keys/{fifth_id}/kill");
    assert_eq!(
        client.bearer(Method::POST, &path, &sixth, None).await.0,
        200
    );
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", &fifth, None)
            .await
            .0,
        503
    );
    // A key where an organization id belongs, in the acting header.
    let response = client
        .http
        .get(format!("{}/v1/api-keys", client.base))
        .bearer_auth(admin)
        .header("x-layers-organization", fifth.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);

    // Revoked: the next request is 401.
    let (status, _) = client
        .bearer(
            Method::DELETE,
            &format!("/v1/organizations/{child}/api-keys/{first_id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", first, None)
            .await
            .0,
        401
    );
    // The kill switch, then resume.
    let path = format!("/v1/organizations/{child}/suspend");
    assert_eq!(client.bearer(Method::POST, &path, admin, None).await.0, 200);
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", third, None)
            .await
            .0,
        503
    );
    let path = format!("/v1/organizations/{child}/resume");
    assert_eq!(client.bearer(Method::POST, &path, admin, None).await.0, 200);
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", third, None)
            .await
            .0,
        200
    );
    // Archived: every key revoked.
    let path = format!("/v1/organizations/{child}");
    assert_eq!(
        client.bearer(Method::DELETE, &path, admin, None).await.0,
        200
    );
    assert_eq!(
        client
            .bearer(Method::GET, "/v1/whoami", third, None)
            .await
            .0,
        401
    );
    secrets
}

/// The output is JSON log lines, one per request with the promised fields; returns how many
/// request lines there were.
fn assert_structured(output: &str) -> usize {
    let mut requests = 0;
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("LOG_FORMAT=json, yet this line is not JSON: {line}"));
        if entry["message"] == "request" {
            requests += 1;
            for field in [
                "request_id",
                "method",
                "route",
                "status",
                "latency_ms",
                "key_id",
            ] {
                assert!(
                    !entry[field].is_null(),
                    "request line without {field}: {line}"
                );
            }
        }
    }
    requests
}

fn assert_no_leak(secrets: &Secrets, output: &str) {
    let leaks = secrets.leaks(output);
    assert!(
        leaks.is_empty(),
        "the server's output ({} lines) shows secrets:\n{}",
        output.lines().count(),
        leaks.join("\n")
    );
}

async fn run(envs: &[(&str, &str)], admin: &str) {
    let server = Captured::spawn(envs);
    server.ready().await;
    let client = Client {
        base: server.base.clone(),
        http: reqwest::Client::new(),
    };
    let secrets = exercise(&client, admin).await;
    let output = tokio::task::spawn_blocking(move || server.finish())
        .await
        .unwrap();
    let requests = assert_structured(&output);
    // Not vacuous: the requests above were logged (38 of them at least).
    assert!(requests >= 38, "only {requests} request lines:\n{output}");
    assert_no_leak(&secrets, &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_on_the_embedded_store() {
    let admin = random_key();
    run(
        &[("BOOTSTRAP_ADMIN_KEY", &admin), ("RUST_LOG", "trace")],
        &admin,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_on_postgres() {
    let database = TestDatabase::create().await.expect("a test database");
    let admin = random_key();
    run(
        &[
            ("DATABASE_URL", database.url()),
            ("DATABASE_POOL_SIZE", "2"),
            ("BOOTSTRAP_ADMIN_KEY", &admin),
            ("RUST_LOG", "trace"),
        ],
        &admin,
    )
    .await;
}

/// Without `BOOTSTRAP_ADMIN_KEY` (embedded store) the generated key is printed once for the
/// operator — on a plain line, not in a log line — and never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_bootstrap_key_is_printed_once_and_never_logged() {
    let server = Captured::spawn(&[("RUST_LOG", "trace")]);
    server.ready().await;
    let printed = {
        let output = server.output.lock().unwrap();
        String::from_utf8_lossy(&output).into_owned()
    };
    let admin = printed
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("lp_"))
        .unwrap_or_else(|| panic!("no generated key printed:\n{printed}"))
        .to_owned();
    let client = Client {
        base: server.base.clone(),
        http: reqwest::Client::new(),
    };
    let mut secrets = exercise(&client, &admin).await;
    let output = tokio::task::spawn_blocking(move || server.finish())
        .await
        .unwrap();

    let plain: Vec<&str> = output
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).is_err())
        .collect();
    assert_eq!(
        output.matches(admin.as_str()).count(),
        1,
        "the generated key is printed exactly once"
    );
    assert!(
        plain.iter().any(|line| line.trim() == admin),
        "on a line of its own"
    );
    // Everything else is JSON log lines, none of which shows a secret.
    let logs: String = output
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).is_ok())
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(assert_structured(&logs) >= 38);
    secrets.add(&admin);
    assert_no_leak(&secrets, &logs);
}
