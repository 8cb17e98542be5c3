//! A webhook receiver on this machine for the delivery tests: a plain TCP server that keeps every
//! request it gets, with its arrival time, and answers each with the status the test sets — or
//! holds its answer until the test lets it go.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// One request a receiver got: its headers (lower-case names), body, and when it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub arrived: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    holding: Arc<AtomicBool>,
    release: Arc<Notify>,
}

impl Receiver {
    /// A receiver answering `200` until told otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            holding: Arc::default(),
            release: Arc::default(),
        };
        let (sink, status) = (receiver.received.clone(), receiver.status.clone());
        let (holding, release) = (receiver.holding.clone(), receiver.release.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (sink, status) = (sink.clone(), status.clone());
                let (holding, release) = (holding.clone(), release.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    sink.lock().unwrap().push(request);
                    if holding.load(Ordering::SeqCst) {
                        release.notified().await;
                    }
                    let code = status.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        receiver
    }

    /// Answers every request from now on with `status`.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Holds the answers of the requests arriving from now on, until [`Self::release`].
    pub fn hold(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (deliveries start within 2 s, API.md §7; this waits
    /// up to 20 s so a loaded machine does not fail the test).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} deliveries, got {:?}", self.received());
    }

    /// Asserts that no more than `n` requests arrive within `quiet`.
    pub async fn assert_stays_at(&self, n: usize, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        let received = self.received();
        assert_eq!(received.len(), n, "unexpected deliveries: {received:?}");
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let arrived = Instant::now();
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        arrived,
    })
}
