//! The sender against a real HTTP receiver on a random local port: what it answers, what arrives,
//! and where the policy refuses to go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters_webhook::{Destination, HttpSender, SenderPolicy};
use domain::ports::{OutboundRequest, SendOutcome, WebhookSender};
use domain::webhooks::WebhookUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the receiver does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer(u16),
    /// Waits this long before answering 200.
    Sleep(Duration),
    /// 302 to `/elsewhere` on the same server.
    Redirect,
}

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, behaviour, log).await;
                });
            }
        });
        Receiver { addr, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 request per connection: read the head and a Content-Length body, record it,
/// answer as told.
async fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    log: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
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
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(Received {
        method,
        path: path.clone(),
        headers,
        body,
    });
    let response = match behaviour {
        Behaviour::Answer(status) => format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n"),
        Behaviour::Sleep(wait) => {
            tokio::time::sleep(wait).await;
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
        }
        Behaviour::Redirect if path == "/elsewhere" => {
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
        }
        Behaviour::Redirect => {
            "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n".to_owned()
        }
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn local_dev() -> HttpSender {
    HttpSender::new(SenderPolicy {
        allow_private_urls: true,
    })
}

fn production() -> HttpSender {
    HttpSender::new(SenderPolicy {
        allow_private_urls: false,
    })
}

fn url(raw: &str) -> WebhookUrl {
    WebhookUrl::parse(raw).unwrap()
}

fn request(to: &str, body: &str) -> OutboundRequest {
    OutboundRequest {
        url: url(to),
        headers: vec![
            ("X-Layers-Event-Id", "evt_01JTEST".to_owned()),
            ("X-Layers-Signature", "t=1,v1=abc".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ],
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn answers_are_reported_with_their_status() {
    for status in [200, 201, 204, 299, 400, 404, 408, 410, 429, 500, 502, 503] {
        let receiver = Receiver::start(Behaviour::Answer(status)).await;
        let outcome = local_dev()
            .send(request(&receiver.url("/hook"), "{}"))
            .await;
        assert_eq!(outcome, SendOutcome::Answered { status }, "status {status}");
        assert_eq!(receiver.received().len(), 1);
    }
}

#[tokio::test]
async fn headers_and_body_arrive_intact() {
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let body = r#"{"id":"evt_01JTEST","type":"organization.created","data":{"name":"Acme ✓ — «ü»","n":[1,2,3]}}"#;
    let outcome = local_dev()
        .send(request(&receiver.url("/hooks/in?token=abc"), body))
        .await;
    assert_eq!(outcome, SendOutcome::Answered { status: 200 });
    let received = receiver.received();
    let [got] = received.as_slice() else {
        panic!("one request expected, got {received:?}")
    };
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/hooks/in?token=abc");
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(got.header("x-layers-event-id"), Some("evt_01JTEST"));
    assert_eq!(got.header("x-layers-signature"), Some("t=1,v1=abc"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let length = body.len().to_string();
    assert_eq!(got.header("content-length"), Some(length.as_str()));
    assert_eq!(got.header("host"), Some(receiver.addr.to_string().as_str()));
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_no_answer() {
    let receiver = Receiver::start(Behaviour::Sleep(Duration::from_secs(5))).await;
    let sender = local_dev().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let outcome = sender.send(request(&receiver.url("/slow"), "{}")).await;
    let took = started.elapsed();
    assert_eq!(
        outcome,
        SendOutcome::NoAnswer {
            error: "no answer within 300 ms".to_owned()
        }
    );
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    assert!(took < Duration::from_secs(2), "gave up only after {took:?}");
    // The request did reach it: the timeout is on the answer.
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn the_default_deadline_is_the_contracts_ten_seconds() {
    assert_eq!(local_dev().timeout(), Duration::from_secs(10));
    assert_eq!(
        domain::webhooks::DELIVERY_TIMEOUT,
        time::Duration::seconds(10)
    );
    // An answer after 200 ms is well within it.
    let receiver = Receiver::start(Behaviour::Sleep(Duration::from_millis(200))).await;
    let outcome = local_dev().send(request(&receiver.url("/"), "{}")).await;
    assert_eq!(outcome, SendOutcome::Answered { status: 200 });
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let receiver = Receiver::start(Behaviour::Redirect).await;
    let outcome = local_dev()
        .send(request(&receiver.url("/hook"), "{}"))
        .await;
    assert_eq!(outcome, SendOutcome::Answered { status: 302 });
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"], "the redirect was followed");
}

#[tokio::test]
async fn nobody_listening_is_no_answer() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outcome = local_dev()
        .send(request(&format!("http://127.0.0.1:{port}/"), "{}"))
        .await;
    assert_eq!(
        outcome,
        SendOutcome::NoAnswer {
            error: "could not connect to the endpoint".to_owned()
        }
    );
}

#[tokio::test]
async fn private_addresses_are_refused_unless_local_development() {
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let port = receiver.addr.port();
    let private = [
        format!("https://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
        "https://10.1.2.3/".to_owned(),
        "https://172.16.0.1/".to_owned(),
        "https://192.168.1.1/".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::1]/".to_owned(),
        "https://[fe80::1]/".to_owned(),
        "https://[fd00::1]/".to_owned(),
        "https://[::ffff:127.0.0.1]/".to_owned(),
        "https://0.0.0.0/".to_owned(),
        // Other spellings of 127.0.0.1, normalized by the URL parser.
        "https://2130706433/".to_owned(),
        "https://0x7f.1/".to_owned(),
    ];
    for raw in &private {
        let refused = production().vet(&url(raw)).await;
        let why = refused.expect_err(raw);
        assert!(
            why.contains("loopback, private or link-local"),
            "{raw}: {why}"
        );
    }
    // Delivery time too: nothing reaches the receiver.
    let outcome = production()
        .send(request(&format!("https://localhost:{port}/"), "{}"))
        .await;
    let SendOutcome::NoAnswer { error } = outcome else {
        panic!("sent to localhost: {outcome:?}")
    };
    assert!(error.starts_with("the URL was refused: "), "{error}");
    let outcome = production()
        .send(request(&format!("https://127.0.0.1:{port}/"), "{}"))
        .await;
    assert!(
        matches!(outcome, SendOutcome::NoAnswer { .. }),
        "{outcome:?}"
    );
    assert!(receiver.received().is_empty());

    // In local-development mode they pass (and localhost resolves).
    for raw in &private {
        assert_eq!(local_dev().vet(&url(raw)).await, Ok(()), "{raw}");
    }
    let outcome = local_dev()
        .send(request(&format!("http://localhost:{port}/"), "{}"))
        .await;
    assert_eq!(outcome, SendOutcome::Answered { status: 200 });
}

#[tokio::test]
async fn a_public_address_passes() {
    for raw in [
        "https://93.184.215.14/hook",
        "https://1.1.1.1/",
        "https://[2606:4700:4700::1111]/",
    ] {
        assert_eq!(production().vet(&url(raw)).await, Ok(()), "{raw}");
    }
}

#[tokio::test]
async fn http_is_refused_unless_local_development() {
    for raw in ["http://93.184.215.14/hook", "http://example.com/"] {
        assert_eq!(
            production().vet(&url(raw)).await,
            Err("must be an https URL".to_owned()),
            "{raw}"
        );
    }
    let receiver = Receiver::start(Behaviour::Answer(204)).await;
    let outcome = production().send(request(&receiver.url("/"), "{}")).await;
    assert_eq!(
        outcome,
        SendOutcome::NoAnswer {
            error: "the URL was refused: must be an https URL".to_owned()
        }
    );
    assert!(receiver.received().is_empty());
    assert_eq!(local_dev().vet(&url("http://93.184.215.14/")).await, Ok(()));
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_refused_clearly() {
    for sender in [production(), local_dev()] {
        let why = sender
            .vet(&url("https://no-such-host.invalid/hook"))
            .await
            .unwrap_err();
        assert!(
            why == "the host no-such-host.invalid does not resolve"
                || why == "the host no-such-host.invalid could not be resolved in time",
            "{why}"
        );
    }
}

/// The connection goes to the addresses vetted, not to a second DNS answer: a destination whose
/// name is pinned to the receiver reaches it although the name resolves nowhere.
#[tokio::test]
async fn the_connection_uses_the_pinned_address() {
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let port = receiver.addr.port();
    let target = format!("http://pinned.invalid:{port}/hook");
    let destination = Destination::pinned_unchecked(target.parse().unwrap(), vec![receiver.addr]);
    let outcome = local_dev().post(&destination, request(&target, "{}")).await;
    assert_eq!(outcome, SendOutcome::Answered { status: 200 });
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let host = format!("pinned.invalid:{port}");
    assert_eq!(received[0].header("host"), Some(host.as_str()));

    // What vet pins is what the name resolved to.
    let vetted = SenderPolicy {
        allow_private_urls: true,
    }
    .vet(&url(&format!("http://localhost:{port}/")))
    .await
    .unwrap();
    assert!(!vetted.pinned_addresses().is_empty());
    assert!(vetted
        .pinned_addresses()
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == port));
}

#[tokio::test]
async fn an_invalid_header_value_is_no_answer_not_a_panic() {
    let receiver = Receiver::start(Behaviour::Answer(200)).await;
    let mut bad = request(&receiver.url("/"), "{}");
    bad.headers.push(("X-Bad", "line\r\nbreak".to_owned()));
    let outcome = local_dev().send(bad).await;
    assert!(
        matches!(outcome, SendOutcome::NoAnswer { .. }),
        "{outcome:?}"
    );
    assert!(receiver.received().is_empty());
}
