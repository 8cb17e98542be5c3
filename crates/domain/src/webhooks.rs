//! Webhooks (API.md §7): endpoints, the event catalogue, signed deliveries and their retry
//! schedule.
//!
//! Events are recorded by the store in the same atomic change as what caused them (the outbox,
//! see [`crate::trail::Trail`]); in that change the store also creates one delivery per matching
//! endpoint and schedules it as a job bound to the endpoint's owner, so a suspended owner's
//! deliveries are held by the job queue like any other work, and its archive cancels them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::validation::FieldError;
use crate::{OrganizationId, Timestamp};

crate::ids::prefixed_id!(
    /// A webhook endpoint: `whe_<uuid>`.
    EndpointId,
    "whe_"
);
crate::ids::prefixed_id!(
    /// One event's delivery to one endpoint: `whd_<uuid>`.
    DeliveryId,
    "whd_"
);
crate::ids::ulid_id!(
    /// A webhook event: `evt_<ULID>`, time-ordered.
    EventId,
    "evt_"
);

/// The job kind that attempts a delivery; its payload is the delivery id.
pub const DELIVER: &str = "webhook.deliver";
/// A delivery is a success when the receiver answers 2xx within this long.
pub const DELIVERY_TIMEOUT: time::Duration = time::Duration::seconds(10);
/// How long a claimed delivery is its worker's: one attempt (vetting and the 10 s timeout) and
/// its record fit well inside it. Short, because an endpoint's queue waits while its first
/// delivery is claimed: a worker that died holds the endpoint back no longer than this.
pub const DELIVERY_LEASE: time::Duration = time::Duration::minutes(1);
/// Attempts in all: the first and seven retries.
pub const MAX_ATTEMPTS: u32 = 8;
/// When the retries are due, counted from the first try (API.md §7).
pub const RETRY_SCHEDULE: [time::Duration; 7] = [
    time::Duration::seconds(30),
    time::Duration::minutes(1),
    time::Duration::minutes(5),
    time::Duration::minutes(15),
    time::Duration::hours(1),
    time::Duration::hours(6),
    time::Duration::hours(24),
];
/// This many failed attempts in a row, across deliveries, pause an endpoint.
pub const AUTO_PAUSE_AFTER: u32 = 20;
pub const MAX_EVENT_TYPES: usize = 50;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// When the attempt after `attempts_made` failed ones is due, given the instant the last one
/// stands for on the schedule ([`on_schedule`]); `None` when none is left. Each wait is the gap
/// between two points of the schedule, so the retries land on it: the n-th at the first try plus
/// the n-th offset, shifted only by time held.
pub fn next_attempt(attempts_made: u32, on_schedule: Timestamp) -> Option<Timestamp> {
    let index = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
    let due = RETRY_SCHEDULE.get(index)?;
    let before = index
        .checked_sub(1)
        .and_then(|i| RETRY_SCHEDULE.get(i))
        .copied()
        .unwrap_or(time::Duration::ZERO);
    Some(on_schedule.plus(*due - before))
}

/// The instant an attempt stands for on the retry schedule (API.md §7: "retried at 30 s, 1 m, …
/// after the first try", and "time held does not use up retries"). The schedule is anchored on
/// the first try, so a retry stands for the instant it was due, however late it started or long
/// it took (a busy worker, a slow receiver): the next one is due one gap later, on the schedule.
/// Two attempts stand for the instant they started instead: the first try, which is the anchor,
/// and an attempt that fell due while its owner was suspended (`was_held`), which goes out at
/// once after the resume — the rest of the schedule moves by the time held, so no retry is spent
/// while nothing could be sent.
pub fn on_schedule(
    attempts_made: u32,
    due: Timestamp,
    started: Timestamp,
    was_held: bool,
) -> Timestamp {
    if attempts_made <= 1 || was_held {
        started
    } else {
        due
    }
}

/// Whether a receiver's answer with this status is worth retrying: anything but a 2xx, except a
/// 4xx other than 408 and 429, which says the request itself is wrong.
pub fn retryable(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

/// The catalogue of event types (API.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationSuspended,
    OrganizationResumed,
    OrganizationArchived,
    CreditsAllocated,
    CreditsReclaimed,
    ApiKeyCreated,
    ApiKeyRevoked,
    TestPing,
}

impl EventType {
    pub const ALL: [Self; 10] = [
        Self::OrganizationCreated,
        Self::OrganizationUpdated,
        Self::OrganizationSuspended,
        Self::OrganizationResumed,
        Self::OrganizationArchived,
        Self::CreditsAllocated,
        Self::CreditsReclaimed,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::TestPing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationUpdated => "organization.updated",
            Self::OrganizationSuspended => "organization.suspended",
            Self::OrganizationResumed => "organization.resumed",
            Self::OrganizationArchived => "organization.archived",
            Self::CreditsAllocated => "credits.allocated",
            Self::CreditsReclaimed => "credits.reclaimed",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::TestPing => "test.ping",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events an endpoint subscribes to: every one (`"*"`) or a list of 1–50 types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    All,
    Only(Vec<EventType>),
}

impl EventSelection {
    /// Parses the `events` field: `"*"` alone, or distinct known types (kept in the order given).
    pub fn parse(raw: &[String]) -> Result<Self, FieldError> {
        if raw.len() == 1 && raw[0] == "*" {
            return Ok(Self::All);
        }
        if raw.is_empty() || raw.len() > MAX_EVENT_TYPES {
            return Err(FieldError::new(
                "events",
                format!("must hold 1-{MAX_EVENT_TYPES} event types, or \"*\" alone"),
            ));
        }
        let mut types = Vec::with_capacity(raw.len());
        for name in raw {
            let Some(event_type) = EventType::parse(name) else {
                return Err(FieldError::new(
                    "events",
                    format!("unknown event type {name:?} (\"*\" may only stand alone)"),
                ));
            };
            if !types.contains(&event_type) {
                types.push(event_type);
            }
        }
        Ok(Self::Only(types))
    }

    pub fn admits(&self, event_type: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&event_type),
        }
    }

    /// The stored and shown form: `["*"]` or the type names.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointScope {
    /// The owner's own events.
    Own,
    /// The owner's events and every direct child's (needs `org:admin`).
    AllChildren,
}

impl EndpointScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::AllChildren => "all_children",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Own, Self::AllChildren]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Enabled,
    Disabled,
    /// Paused by the server after [`AUTO_PAUSE_AFTER`] failures in a row; enabling it again
    /// resets the count.
    AutoPaused,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::AutoPaused => "auto_paused",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Enabled, Self::Disabled, Self::AutoPaused]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// An endpoint URL as the caller wrote it: absolute `http(s)`, with a host, no credentials, at
/// most [`MAX_URL_CHARS`]. Whether its scheme and address are allowed is the sender's policy
/// ([`crate::ports::WebhookSender::vet`]), checked at creation and again at every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = |why: &str| FieldError::new("url", why);
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(invalid("must be at most 2048 characters"));
        }
        let parsed = url::Url::parse(raw).map_err(|_| invalid("must be an absolute URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(invalid("must be an https URL"));
        }
        if parsed.host().is_none() {
            return Err(invalid("must name a host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        if parsed.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A stored URL, taken as it was validated.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parsed form, for the sender.
    pub fn parsed(&self) -> Option<url::Url> {
        url::Url::parse(&self.0).ok()
    }
}

/// Whether deliveries may go to this address: loopback, private, link-local, unspecified,
/// multicast, documentation and other non-public ranges are refused (API.md §7).
pub fn is_public_address(address: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
            };
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address: judge that one.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_address(embedded(segments[6], segments[7]));
            }
            if segments[0] == 0x2002 {
                return is_public_address(embedded(segments[1], segments[2]));
            }
            let first = segments[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || first == 0x2001 && segments[1] == 0x0db8) // documentation
        }
    }
}

/// The secret an endpoint's deliveries are signed with: `whsec_` and 32 random bytes in
/// base64url. Kept by the store (signing needs it), shown once at creation.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";

    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(format!("{}{}", Self::PREFIX, URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `X-Layers-Signature`: `t=<unix secs>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub fn signature(&self, at: Timestamp, body: &str) -> String {
        let seconds = at.unix_micros().div_euclid(1_000_000);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(format!("{seconds}.").as_bytes());
        mac.update(body.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("t={seconds},v1={hex}")
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: EndpointId,
    pub organization_id: OrganizationId,
    pub url: WebhookUrl,
    pub events: EventSelection,
    pub scope: EndpointScope,
    pub status: EndpointStatus,
    pub description: Option<String>,
    pub secret: SigningSecret,
    /// Failed attempts in a row, across its deliveries; a success resets it.
    pub consecutive_failures: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether an event about `subject` (whose parent is `subject_parent`) goes to this endpoint.
    pub fn wants(
        &self,
        event_type: EventType,
        subject: OrganizationId,
        subject_parent: Option<OrganizationId>,
    ) -> bool {
        let about_owner = subject == self.organization_id;
        let about_child = self.scope == EndpointScope::AllChildren
            && subject_parent == Some(self.organization_id);
        self.status == EndpointStatus::Enabled
            && event_type != EventType::TestPing
            && self.events.admits(event_type)
            && (about_owner || about_child)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (the first, or a retry after a failure).
    Pending,
    Succeeded,
    /// Refused by the receiver with a 4xx that is not retried.
    Failed,
    /// Every attempt failed.
    Abandoned,
    /// The owner was archived, or the endpoint deleted or paused, before it went out.
    Canceled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Succeeded,
            Self::Failed,
            Self::Abandoned,
            Self::Canceled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The receiver's status code at the last attempt, if it answered.
    pub last_response_status: Option<u16>,
    pub last_attempt_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Read-time fact: the endpoint's owner (or its parent) is suspended, so a pending delivery
    /// is held (shown as `held`).
    pub held: bool,
}

impl Delivery {
    /// A new delivery of `event` to an endpoint, due at once.
    pub fn of(id: DeliveryId, endpoint_id: EndpointId, event: &Event) -> Self {
        Self {
            id,
            endpoint_id,
            event_id: event.id,
            event_type: event.event_type,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            last_response_status: None,
            last_attempt_at: None,
            next_attempt_at: Some(event.created_at),
            created_at: event.created_at,
            held: false,
        }
    }

    /// The status the API shows: `held` for a pending delivery of a suspended owner.
    pub fn shown_status(&self) -> &'static str {
        match self.status {
            DeliveryStatus::Pending if self.held => "held",
            status => status.as_str(),
        }
    }
}

/// A recorded event (the outbox row): its body is the exact JSON every delivery sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    /// The organization it is about.
    pub organization_id: OrganizationId,
    pub created_at: Timestamp,
    pub body: String,
    /// For a test ping or a replay: the one delivery it gets, to one endpoint, whatever that
    /// endpoint subscribes to.
    pub target: Option<(EndpointId, DeliveryId)>,
    pub replay_of: Option<EventId>,
}

/// What a delivery attempt needs: the delivery, its endpoint and the event's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAttempt {
    pub delivery: Delivery,
    pub endpoint: WebhookEndpoint,
    pub body: String,
}

/// How an attempt ended, as the store records it with the delivery, its endpoint's failure
/// count and the delivery's job, in one atomic change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: Timestamp,
    /// The delivery's status afterwards; `Pending` with `next_attempt_at` for a retry.
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub response_status: Option<u16>,
    pub error: Option<String>,
    /// Whether an attempt was made (it counts, and moves the endpoint's failure count); a
    /// delivery canceled without an attempt makes none.
    pub attempted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_offset_datetime(datetime!(2026-06-01 00:00 UTC))
            .plus(time::Duration::seconds(seconds))
    }

    #[test]
    fn retries_land_on_the_schedule_counted_from_the_first_try() {
        let first = at(0);
        let mut failed_at = first;
        let mut offsets = Vec::new();
        for attempts in 1..MAX_ATTEMPTS {
            let next = next_attempt(attempts, failed_at).unwrap();
            offsets.push(next.unix_micros() - first.unix_micros());
            failed_at = next;
        }
        let expected: Vec<i64> = RETRY_SCHEDULE
            .iter()
            .map(|d| i64::try_from(d.whole_microseconds()).unwrap())
            .collect();
        assert_eq!(offsets, expected);
        assert_eq!(next_attempt(MAX_ATTEMPTS, failed_at), None);
        assert_eq!(next_attempt(0, failed_at), None);
    }

    #[test]
    fn late_or_slow_retries_keep_the_schedule_and_held_ones_move_it() {
        let offset = |n: usize| RETRY_SCHEDULE[n];
        let first = at(0);
        // The first try anchors the schedule whenever it starts (after a hold, too).
        let second_due = next_attempt(1, on_schedule(1, at(-50), first, true)).unwrap();
        assert_eq!(second_due, first.plus(offset(0)));
        // The second starts 15 s late (a busy worker): the third is still due at the first
        // try plus one minute.
        let late = second_due.plus(time::Duration::seconds(15));
        let third_due = next_attempt(2, on_schedule(2, second_due, late, false)).unwrap();
        assert_eq!(third_due, first.plus(offset(1)));
        // The third fell due while the owner was suspended and goes out after the resume, two
        // hours on: the next waits its full gap from then (5 min − 1 min), not from the schedule.
        let resumed = third_due.plus(time::Duration::hours(2));
        let fourth_due = next_attempt(3, on_schedule(3, third_due, resumed, true)).unwrap();
        assert_eq!(fourth_due, resumed.plus(offset(2) - offset(1)));
        // And the schedule goes on from there, shifted by the time held.
        let fifth_due = next_attempt(4, on_schedule(4, fourth_due, fourth_due, false)).unwrap();
        assert_eq!(
            fifth_due,
            first
                .plus(offset(3))
                .plus(resumed.as_offset_datetime() - third_due.as_offset_datetime())
        );
    }

    #[test]
    fn only_request_errors_other_than_408_and_429_are_final() {
        for status in [500, 502, 503, 408, 429, 301, 100] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        // The expected value comes from Python's hmac module, not from this code.
        let secret = SigningSecret::from_stored("whsec_test".to_owned());
        let at = Timestamp::from_unix_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(
            secret.signature(at, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn event_selection_parses_star_alone_and_known_types() {
        assert_eq!(
            EventSelection::parse(&["*".to_owned()]),
            Ok(EventSelection::All)
        );
        assert!(EventSelection::parse(&[]).is_err());
        assert!(EventSelection::parse(&["*".to_owned(), "test.ping".to_owned()]).is_err());
        assert!(EventSelection::parse(&["organization.exploded".to_owned()]).is_err());
        let only = EventSelection::parse(&[
            "organization.suspended".to_owned(),
            "organization.suspended".to_owned(),
        ])
        .unwrap();
        assert_eq!(only.names(), vec!["organization.suspended"]);
    }

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "192.0.0.8",
            "::1",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
        ] {
            assert!(!is_public_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_need_a_host_and_no_credentials() {
        assert!(WebhookUrl::parse("https://example.com/hooks").is_ok());
        assert!(WebhookUrl::parse("ftp://example.com").is_err());
        assert!(WebhookUrl::parse("https://user:pw@example.com").is_err());
        assert!(WebhookUrl::parse("/relative").is_err());
        assert!(WebhookUrl::parse(&format!("https://example.com/{}", "a".repeat(2048))).is_err());
    }
}
