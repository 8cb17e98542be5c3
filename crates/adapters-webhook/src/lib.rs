//! The outbound side of webhooks (API.md §7): the domain's [`WebhookSender`] port on reqwest.
//!
//! Where a delivery may go is decided by [`SenderPolicy`]:
//! - the scheme must be `https` (plain `http` only in local-development mode);
//! - every address the host resolves to must be public ([`is_public_address`]): one private
//!   address among public ones is enough to refuse, since the connection could pick it; a literal
//!   IP is checked as it is (the URL parser has already normalized forms like `http://2130706433/`);
//! - in local-development mode (`WEBHOOKS_ALLOW_PRIVATE_URLS=true`) both checks are off, but the
//!   host must still resolve.
//!
//! [`HttpSender::send`] vets again at delivery time (DNS can change after the endpoint was
//! created), and then connects only to the addresses it just vetted: the client is built for that
//! one request with the host pinned to them (`ClientBuilder::resolve_to_addrs`), so a second DNS
//! answer between the check and the connection — DNS rebinding — cannot send it elsewhere. The
//! client follows no redirect (a 3xx is the receiver's answer, and following it would reach an
//! address nobody vetted) and uses no proxy from the environment (a proxy would resolve the host
//! itself). The whole attempt, vetting included, has one deadline: [`DELIVERY_TIMEOUT`].
//!
//! The messages of refusals and failures are shown to API callers (`422` details, a delivery's
//! `lastError`), so they name what the caller wrote and never an internal detail; the underlying
//! error goes to the log at debug level.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::{OutboundRequest, SendOutcome, WebhookSender};
use domain::webhooks::{is_public_address, WebhookUrl, DELIVERY_TIMEOUT};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// How long resolving an endpoint's host may take when it is vetted outside a delivery (at
/// creation, on a URL change).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sent with every delivery, so receivers can tell our requests apart in their logs.
const USER_AGENT: &str = "Layers-Webhooks/1";

/// Where deliveries may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderPolicy {
    /// Local development and tests: accept `http` and loopback, private and link-local addresses.
    pub allow_private_urls: bool,
}

/// A URL that passed [`SenderPolicy::vet`], with the addresses its host resolved to then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    url: reqwest::Url,
    /// The host name and its vetted addresses; `None` for a literal IP (nothing to resolve).
    pinned: Option<(String, Vec<SocketAddr>)>,
}

impl Destination {
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The addresses a connection to this destination may use (empty for a literal IP, which
    /// is used as it is).
    pub fn pinned_addresses(&self) -> &[SocketAddr] {
        self.pinned.as_ref().map_or(&[], |(_, addrs)| addrs)
    }

    /// A destination whose host is pinned to `addrs` without being vetted: for tests of the
    /// pinning itself.
    #[doc(hidden)]
    pub fn pinned_unchecked(url: reqwest::Url, addrs: Vec<SocketAddr>) -> Self {
        let pinned = url.host_str().map(|host| (host.to_owned(), addrs));
        Self { url, pinned }
    }
}

impl SenderPolicy {
    /// Whether deliveries may go to `url`, and where its host resolves now. The error is a short
    /// reason, fit to show the caller.
    pub async fn vet(&self, url: &WebhookUrl) -> Result<Destination, String> {
        let Some(url) = url.parsed() else {
            return Err("must be an absolute URL".to_owned());
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private_urls => {}
            _ => return Err("must be an https URL".to_owned()),
        }
        let Some(port) = url.port_or_known_default() else {
            return Err("must be an https URL".to_owned());
        };
        let pinned = match url.host() {
            None => return Err("must name a host".to_owned()),
            Some(url::Host::Ipv4(ip)) => {
                self.check_address(IpAddr::V4(ip))?;
                None
            }
            Some(url::Host::Ipv6(ip)) => {
                self.check_address(IpAddr::V6(ip))?;
                None
            }
            Some(url::Host::Domain(host)) => {
                let addrs = resolve(host, port).await?;
                for addr in &addrs {
                    self.check_address(addr.ip()).map_err(|_| {
                        format!(
                            "the host {host} resolves to a loopback, private or link-local \
                             address; deliveries go to public addresses only"
                        )
                    })?;
                }
                Some((host.to_owned(), addrs))
            }
        };
        Ok(Destination { url, pinned })
    }

    fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private_urls || is_public_address(ip) {
            Ok(())
        } else {
            Err(
                "must not point to a loopback, private or link-local address; deliveries go to \
                 public addresses only"
                    .to_owned(),
            )
        }
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let not_resolved = || format!("the host {host} does not resolve");
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
    match lookup.await {
        Err(_) => Err(format!("the host {host} could not be resolved in time")),
        Ok(Err(error)) => {
            tracing::debug!(%host, %error, "webhook host lookup failed");
            Err(not_resolved())
        }
        Ok(Ok(addrs)) => {
            let mut addrs: Vec<SocketAddr> = addrs.collect();
            addrs.dedup();
            if addrs.is_empty() {
                Err(not_resolved())
            } else {
                Ok(addrs)
            }
        }
    }
}

/// The [`WebhookSender`] of the server: vets, pins, POSTs, reports the status.
#[derive(Debug, Clone)]
pub struct HttpSender {
    policy: SenderPolicy,
    /// The deadline of one attempt, from vetting to the response's status line.
    timeout: Duration,
}

impl HttpSender {
    pub fn new(policy: SenderPolicy) -> Self {
        let timeout = Duration::from_micros(
            u64::try_from(DELIVERY_TIMEOUT.whole_microseconds()).unwrap_or(10_000_000),
        );
        Self { policy, timeout }
    }

    /// The same sender with another deadline per attempt (tests shorten it).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The deadline of one attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn policy(&self) -> SenderPolicy {
        self.policy
    }

    /// POSTs `request` to an already vetted destination, connecting only to its pinned addresses,
    /// within this sender's deadline.
    pub async fn post(&self, destination: &Destination, request: OutboundRequest) -> SendOutcome {
        match tokio::time::timeout(self.timeout, self.attempt(destination, request)).await {
            Ok(outcome) => outcome,
            Err(_) => self.timed_out(),
        }
    }

    async fn attempt(&self, destination: &Destination, request: OutboundRequest) -> SendOutcome {
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => return no_answer(format!("the delivery has an invalid header {name}")),
            }
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT);
        if let Some((host, addrs)) = &destination.pinned {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "could not build the webhook HTTP client");
                return no_answer("the delivery could not be sent".to_owned());
            }
        };
        let sent = client
            .post(destination.url.clone())
            .headers(headers)
            .body(request.body)
            .send()
            .await;
        match sent {
            Ok(response) => SendOutcome::Answered {
                status: response.status().as_u16(),
            },
            Err(error) => {
                tracing::debug!(url = %destination.url, error = ?error, "webhook delivery failed");
                if error.is_timeout() {
                    self.timed_out()
                } else if error.is_connect() {
                    no_answer("could not connect to the endpoint".to_owned())
                } else {
                    no_answer("the endpoint did not answer".to_owned())
                }
            }
        }
    }

    fn timed_out(&self) -> SendOutcome {
        no_answer(format!(
            "no answer within {}",
            describe_duration(self.timeout)
        ))
    }
}

fn no_answer(error: String) -> SendOutcome {
    SendOutcome::NoAnswer { error }
}

fn describe_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn vet(&self, url: &WebhookUrl) -> Result<(), String> {
        self.policy.vet(url).await.map(|_| ())
    }

    async fn send(&self, request: OutboundRequest) -> SendOutcome {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let vetted = tokio::time::timeout_at(deadline, self.policy.vet(&request.url)).await;
        let destination = match vetted {
            Err(_) => return self.timed_out(),
            Ok(Err(why)) => return no_answer(format!("the URL was refused: {why}")),
            Ok(Ok(destination)) => destination,
        };
        match tokio::time::timeout_at(deadline, self.attempt(&destination, request)).await {
            Ok(outcome) => outcome,
            Err(_) => self.timed_out(),
        }
    }
}
