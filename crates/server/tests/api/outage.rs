//! The database goes away and comes back: requests get `503 UNAVAILABLE` within a bounded time
//! (never a 500, never a hang), `/readyz` says not ready, and the server recovers by itself.
//!
//! The outage is a TCP proxy between the server and PostgreSQL that the test cuts and restores,
//! so the shared cluster keeps serving every other test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::support::{random_key, TestApp};
use adapters_pg::testing::TestDatabase;

/// Forwards a local port to PostgreSQL until cut.
struct Proxy {
    address: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            address: listener.local_addr().unwrap(),
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// The database "goes down": no new connections, every open one cut.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The database "comes back" on the same address.
    async fn restore(&self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_503_unavailable_and_the_server_recovers_by_itself() {
    let database = TestDatabase::create().await.unwrap();
    let mut url = url_parts(database.url());
    let proxy = Proxy::start(url.upstream).await;
    url.host_port = proxy.address.to_string();
    let mut config = server::Config::embedded();
    config.database_url = Some(url.to_string());
    config.bootstrap_admin_key = Some(random_key());
    config.database_pool_size = 4;
    let app = TestApp::start(config).await;
    let child = app.create_child("Acme").await;
    let client = reqwest::Client::new();
    let readyz = || client.get(format!("{}/readyz", app.base)).send();
    assert_eq!(readyz().await.unwrap().status(), 200);

    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let response = app
            .get(&format!("/v1/organizations/{child}"), &app.admin_key)
            .await;
        response.assert_error(503, "UNAVAILABLE");
        assert!(response.headers.contains_key("retry-after"));
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1") && !message.to_lowercase().contains("pool"),
            "{message}"
        );
        // Bounded by the pool's create and wait timeouts (seconds), not by TCP's (minutes).
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(readyz().await.unwrap().status(), 503);
    }
    // Requests by any key — even an unknown one — are 503, not 401: we cannot tell while down.
    app.get("/v1/whoami", &random_key())
        .await
        .assert_error(503, "UNAVAILABLE");

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app
            .get(&format!("/v1/organizations/{child}"), &app.admin_key)
            .await;
        if response.status == 200 {
            break;
        }
        response.assert_error(503, "UNAVAILABLE");
        assert!(
            Instant::now() < deadline,
            "the server did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(readyz().await.unwrap().status(), 200);
    // Full service: writes too.
    app.post_empty(
        &format!("/v1/organizations/{child}/suspend"),
        &app.admin_key,
    )
    .await
    .assert_ok(200);
}

struct DatabaseUrl {
    prefix: String,
    host_port: String,
    rest: String,
    upstream: SocketAddr,
}

/// Splits `postgres://user@host:port/db` around `host:port`.
fn url_parts(url: &str) -> DatabaseUrl {
    let (prefix, after) = url.split_once('@').unwrap();
    let (host_port, rest) = after.split_once('/').unwrap();
    DatabaseUrl {
        prefix: format!("{prefix}@"),
        host_port: host_port.to_owned(),
        rest: format!("/{rest}"),
        upstream: host_port.parse().unwrap(),
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.prefix, self.host_port, self.rest)
    }
}
