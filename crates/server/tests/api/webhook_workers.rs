//! Webhook delivery workers of real server processes on one PostgreSQL database (API.md §7, §8,
//! §10): two processes never attempt one delivery at once, held deliveries go out promptly after
//! resume, a worker killed in the middle of a delivery leaves it to be retried (not lost), and a
//! worker stopped by SIGTERM finishes and records the delivery it has in flight.

use std::collections::HashMap;
use std::net::TcpListener as StdTcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters_pg::testing::TestDatabase;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{random_key, test_config, TestApp};

/// The `server` binary as a webhook worker: like `processes::ServerProcess`, with webhooks
/// allowed to the local receiver. Killed (SIGKILL) when dropped.
struct WorkerProcess {
    child: Child,
    base: String,
}

impl WorkerProcess {
    fn spawn(database_url: &str, admin_key: &str) -> WorkerProcess {
        let port = {
            let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env("DATABASE_URL", database_url)
            .env("DATABASE_POOL_SIZE", "4")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("BOOTSTRAP_ADMIN_KEY", admin_key)
            .env("HTTP_WORKERS", "2")
            .env("WEBHOOKS_ALLOW_PRIVATE_URLS", "true")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        WorkerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn ready(self) -> WorkerProcess {
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await {
                if response.status() == 200 {
                    return self;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "SIGTERM sent");
        tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            std::mem::forget(self);
            status
        })
        .await
        .unwrap()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

/// What a receiver saw. A delivery is an event to an endpoint: the request's path (each endpoint
/// has its own) and its `X-Layers-Event-Id`.
#[derive(Default)]
struct Seen {
    /// Delivery → requests for it.
    arrivals: HashMap<(String, String), usize>,
    in_flight: HashMap<(String, String), usize>,
    /// The most requests in flight at once for one delivery, over all deliveries.
    max_in_flight_per_delivery: usize,
    /// Endpoint (path) → requests in flight for it now, and the most at once.
    endpoint_in_flight: HashMap<String, usize>,
    max_in_flight_per_endpoint: usize,
    /// Endpoint (path) → event ids in the order their requests arrived.
    order: HashMap<String, Vec<String>>,
    total_in_flight: usize,
    max_total_in_flight: usize,
    requests: usize,
    first_arrival: Option<Instant>,
}

/// A webhook receiver on a random local port. `answer_after(n)` says how long it holds the n-th
/// request (counted from 0) before answering 200.
#[derive(Clone)]
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    async fn start(answer_after: fn(usize) -> Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let receiver = Receiver { port, seen };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move { serving.serve(stream, answer_after).await });
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn serve(&self, mut stream: TcpStream, answer_after: fn(usize) -> Duration) {
        let Some((path, event_id)) = read_delivery(&mut stream).await else {
            return;
        };
        let delivery = (path.clone(), event_id);
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.requests;
            seen.requests += 1;
            seen.first_arrival.get_or_insert_with(Instant::now);
            *seen.arrivals.entry(delivery.clone()).or_default() += 1;
            seen.order
                .entry(path.clone())
                .or_default()
                .push(delivery.1.clone());
            let in_flight = seen.in_flight.entry(delivery.clone()).or_default();
            *in_flight += 1;
            let in_flight = *in_flight;
            seen.max_in_flight_per_delivery = seen.max_in_flight_per_delivery.max(in_flight);
            let at_endpoint = seen.endpoint_in_flight.entry(path.clone()).or_default();
            *at_endpoint += 1;
            let at_endpoint = *at_endpoint;
            seen.max_in_flight_per_endpoint = seen.max_in_flight_per_endpoint.max(at_endpoint);
            seen.total_in_flight += 1;
            seen.max_total_in_flight = seen.max_total_in_flight.max(seen.total_in_flight);
            n
        };
        tokio::time::sleep(answer_after(n)).await;
        {
            let mut seen = self.seen.lock().unwrap();
            if let Some(in_flight) = seen.in_flight.get_mut(&delivery) {
                *in_flight -= 1;
            }
            if let Some(in_flight) = seen.endpoint_in_flight.get_mut(&path) {
                *in_flight -= 1;
            }
            seen.total_in_flight -= 1;
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn distinct_deliveries(&self) -> usize {
        self.seen.lock().unwrap().arrivals.len()
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().requests
    }

    /// Waits until `done` holds of what the receiver saw, or panics after `within`.
    async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + within;
        while !done(&self.seen.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads one request (head and Content-Length body): its path and `X-Layers-Event-Id`.
async fn read_delivery(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length: usize = header("content-length")?.parse().ok()?;
    let mut body = buffer.len() - (head_end + 4);
    while body < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body += n;
    }
    let path = head.split(' ').nth(1)?.to_owned();
    Some((path, header("x-layers-event-id")?))
}

async fn call(
    client: &Client,
    method: Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A child of the bootstrap organization with `endpoints` endpoints of its own (every event,
/// created with a key of the child's) pointing at `receiver` (`/hooks/<n>`): (child id, endpoint
/// ids).
async fn child_with_endpoints(
    client: &Client,
    base: &str,
    admin_key: &str,
    receiver: &Receiver,
    endpoints: usize,
) -> (String, Vec<String>) {
    let (status, child) = call(
        client,
        Method::POST,
        format!("{base}/v1/organizations"),
        admin_key,
        Some(json!({"name": "Receiver of events"})),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    let (status, minted) = call(
        client,
        Method::POST,
        format!("{base}/v1/organizations/{child}/api-keys"),
        admin_key,
        Some(json!({"name": "hooks", "scopes": ["*"]})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let child_key = minted["secret"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for n in 0..endpoints {
        let (status, endpoint) = call(
            client,
            Method::POST,
            format!("{base}/v1/webhook-endpoints"),
            &child_key,
            Some(json!({"url": receiver.url(&format!("/hooks/{n}")), "events": ["*"]})),
        )
        .await;
        assert_eq!(status, 201, "{endpoint}");
        ids.push(endpoint["id"].as_str().unwrap().to_owned());
    }
    (child, ids)
}

/// Every delivery of the endpoint (of `child`), newest first, read by the parent acting inside
/// the child (its own keys are refused while it is suspended).
async fn deliveries(
    client: &Client,
    base: &str,
    (admin_key, child): (&str, &str),
    endpoint: &str,
) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/webhook-endpoints/{endpoint}/deliveries?limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = client
            .get(url)
            .bearer_auth(admin_key)
            .header("X-Layers-Organization", child)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// Waits until every delivery of the endpoint is recorded `succeeded`; returns them.
async fn all_succeeded(
    client: &Client,
    base: &str,
    reader: (&str, &str),
    endpoint: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let items = deliveries(client, base, reader, endpoint).await;
        if items.iter().all(|d| d["status"] == "succeeded") {
            return items;
        }
        let pending: Vec<_> = items
            .iter()
            .filter(|d| d["status"] != "succeeded")
            .collect();
        assert!(
            Instant::now() < deadline,
            "deliveries never all succeeded: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two worker processes drain one backlog: events held while the endpoints' owner is suspended
/// go out after resume, promptly, each delivery attempted by one worker at a time — across
/// processes —, each endpoint's one at a time and in order, and every one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_processes_never_attempt_one_delivery_at_once() {
    const ENDPOINTS: usize = 6;
    const PATCHES: usize = 24;
    let database = TestDatabase::create().await.unwrap();
    let admin_key = random_key();
    let (a, b) = (
        WorkerProcess::spawn(database.url(), &admin_key),
        WorkerProcess::spawn(database.url(), &admin_key),
    );
    let (a, b) = (a.ready().await, b.ready().await);
    let client = Client::new();
    // Each request is held a while, so a second attempt of the same delivery would overlap it.
    let receiver = Receiver::start(|_| Duration::from_millis(200)).await;
    let (child, endpoints) =
        child_with_endpoints(&client, &a.base, &admin_key, &receiver, ENDPOINTS).await;

    // Held while the child is suspended: its own endpoints' deliveries wait, through both
    // processes' updates.
    let (status, _) = call(
        &client,
        Method::POST,
        format!("{}/v1/organizations/{child}/suspend", a.base),
        &admin_key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut updates = Vec::new();
    for i in 0..PATCHES {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let request = client
            .patch(format!("{base}/v1/organizations/{child}"))
            .bearer_auth(&admin_key)
            .json(&json!({"name": format!("Renamed {i}")}));
        updates.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    for update in updates {
        assert_eq!(update.await.unwrap(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        receiver.requests(),
        0,
        "delivered while the owner was suspended"
    );
    for endpoint in &endpoints {
        let held = deliveries(&client, &b.base, (&admin_key, &child), endpoint).await;
        assert_eq!(held.len(), PATCHES + 1, "suspended + every update");
        assert!(held.iter().all(|d| d["status"] == "held"), "{held:?}");
    }

    let (status, _) = call(
        &client,
        Method::POST,
        format!("{}/v1/organizations/{child}/resume", b.base),
        &admin_key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let resumed = Instant::now();
    // suspended, the updates, resumed: to every endpoint.
    let expected = (PATCHES + 2) * ENDPOINTS;
    receiver
        .wait_for(
            Duration::from_secs(90),
            "every delivery to arrive",
            |seen| seen.arrivals.len() == expected,
        )
        .await;
    let drained = resumed.elapsed();
    let mut recorded = Vec::new();
    let mut in_order = Vec::new();
    for endpoint in &endpoints {
        let items = all_succeeded(&client, &a.base, (&admin_key, &child), endpoint).await;
        // Newest first: the order the events happened in is the reverse.
        in_order.push(
            items
                .iter()
                .rev()
                .map(|d| d["eventId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        recorded.extend(items);
    }

    let seen = receiver.seen.lock().unwrap();
    let first = seen.first_arrival.unwrap().duration_since(resumed);
    let duplicates = seen.requests - seen.arrivals.len();
    println!(
        "{expected} deliveries ({ENDPOINTS} endpoints) through 2 processes: first {first:?} after \
         resume, all in {drained:?}; at most {} in flight at once, {} per endpoint, {} per \
         delivery; {duplicates} duplicates",
        seen.max_total_in_flight, seen.max_in_flight_per_endpoint, seen.max_in_flight_per_delivery
    );
    assert_eq!(
        seen.max_in_flight_per_delivery, 1,
        "one delivery was attempted twice at once"
    );
    assert_eq!(seen.arrivals.len(), expected, "a delivery never arrived");
    // An endpoint's deliveries go one at a time, in the order of their events (the job queue's
    // per-endpoint queue), whichever process takes each.
    assert_eq!(
        seen.max_in_flight_per_endpoint, 1,
        "two deliveries to one endpoint at once"
    );
    for (n, events) in in_order.iter().enumerate() {
        assert_eq!(
            seen.order.get(&format!("/hooks/{n}")),
            Some(events),
            "endpoint {n} got its events out of order"
        );
    }
    assert!(
        first < Duration::from_secs(2),
        "held deliveries went out {first:?} after resume"
    );
    // Both processes were delivering at the same time: more than one process's lanes.
    assert!(
        seen.max_total_in_flight > server::workers::WEBHOOK_LANES,
        "at most {} in flight: the second process never helped",
        seen.max_total_in_flight
    );
    assert_eq!(recorded.len(), expected);
    let attempts: u64 = recorded
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        usize::try_from(attempts).unwrap(),
        seen.requests,
        "every attempt recorded once"
    );
    drop((a, b));
}

/// A worker process killed (SIGKILL) while a receiver holds its request open: the delivery is
/// not lost. Nothing records the attempt, so its job stays claimed under the dead worker's lease;
/// a live server does not take it while the lease holds, and does once it has run out.
///
/// The lease is `domain::webhooks::DELIVERY_LEASE` (1 min), so rather than wait, the server that
/// takes over runs in this test process on the same database with its clock moved past the
/// lease (the suite's `TestClock`): to the queue, the lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_delivery_leaves_it_to_be_retried() {
    let database = TestDatabase::create().await.unwrap();
    let admin_key = random_key();
    let victim = WorkerProcess::spawn(database.url(), &admin_key)
        .ready()
        .await;
    let client = Client::new();
    // The first request is held open until long after the victim is gone; later ones answer.
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Duration::from_secs(600)
        } else {
            Duration::ZERO
        }
    })
    .await;
    let (child, endpoints) =
        child_with_endpoints(&client, &victim.base, &admin_key, &receiver, 1).await;
    let endpoint = &endpoints[0];
    // One event, so one delivery.
    let (status, _) = call(
        &client,
        Method::PATCH,
        format!("{}/v1/organizations/{child}", victim.base),
        &admin_key,
        Some(json!({"name": "Renamed once"})),
    )
    .await;
    assert_eq!(status, 200);
    receiver
        .wait_for(Duration::from_secs(5), "the first attempt", |seen| {
            seen.requests == 1
        })
        .await;
    drop(victim); // SIGKILL while the receiver holds the request

    let mut config = test_config();
    config.database_url = Some(database.url().to_owned());
    config.bootstrap_admin_key = Some(admin_key.clone());
    config.database_pool_size = 4;
    let rescuer = TestApp::start(config).await;
    let [delivery] = deliveries(&client, &rescuer.base, (&admin_key, &child), endpoint)
        .await
        .try_into()
        .unwrap();
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["attempts"], 0, "the killed attempt was recorded");

    // While the dead worker's lease holds, a live worker leaves the delivery alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests(), 1, "taken over while the lease held");

    rescuer
        .clock
        .advance(domain::webhooks::DELIVERY_LEASE + time::Duration::seconds(1));
    let lease_ran_out = Instant::now();
    receiver
        .wait_for(Duration::from_secs(5), "the retry", |seen| {
            seen.requests == 2
        })
        .await;
    let retried_after = lease_ran_out.elapsed();
    let [delivery] = all_succeeded(&client, &rescuer.base, (&admin_key, &child), endpoint)
        .await
        .try_into()
        .unwrap();
    println!("retried {retried_after:?} after the lease ran out: {delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["lastResponseStatus"], 200);
    let seen = receiver.seen.lock().unwrap();
    assert_eq!(
        seen.arrivals.len(),
        1,
        "one event, sent twice (at least once)"
    );
    assert_eq!(seen.arrivals.values().copied().next(), Some(2));
}

/// SIGTERM while a delivery is in flight: the worker lets the receiver answer, records the
/// attempt, and the process exits 0 (API.md §10).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_delivery_in_flight_finish_and_be_recorded() {
    let database = TestDatabase::create().await.unwrap();
    let admin_key = random_key();
    let worker = WorkerProcess::spawn(database.url(), &admin_key)
        .ready()
        .await;
    let client = Client::new();
    let receiver = Receiver::start(|_| Duration::from_millis(1_500)).await;
    let (child, endpoints) =
        child_with_endpoints(&client, &worker.base, &admin_key, &receiver, 1).await;
    let endpoint = &endpoints[0];
    let (status, _) = call(
        &client,
        Method::PATCH,
        format!("{}/v1/organizations/{child}", worker.base),
        &admin_key,
        Some(json!({"name": "Renamed once"})),
    )
    .await;
    assert_eq!(status, 200);
    receiver
        .wait_for(Duration::from_secs(5), "the attempt", |seen| {
            seen.requests == 1
        })
        .await;
    let stopping = Instant::now();
    let exit = worker.terminate().await;
    let took = stopping.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    println!("stopped {took:?} after SIGTERM, with a delivery of 1.5 s in flight");

    // Read by another server, whose workers would not take a claimed delivery within its lease.
    let mut config = test_config();
    config.database_url = Some(database.url().to_owned());
    config.bootstrap_admin_key = Some(admin_key.clone());
    let reader = TestApp::start(config).await;
    let [delivery] = deliveries(&client, &reader.base, (&admin_key, &child), endpoint)
        .await
        .try_into()
        .unwrap();
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(receiver.requests(), 1);
    assert_eq!(receiver.distinct_deliveries(), 1);
}
