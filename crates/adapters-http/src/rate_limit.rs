//! Rate limits (API.md §1.7): per API key and endpoint class, so many requests per minute by the
//! key's tier. The gate asks here right after the kill switch, so `429` comes after `401` and
//! `503` and before everything a handler checks. `docs/rate-limits.md` gives the semantics of
//! every header and what several server processes do.
//!
//! The algorithm is GCRA (the "generic cell rate algorithm", a token bucket kept as one instant):
//! a budget of `limit` requests that refills one request every `60 s / limit`, evenly. Per
//! (key, class) the limiter keeps only the *theoretical arrival time* `tat`: the instant at which
//! the budget will be full again. A request is admitted when `max(tat, now) + interval` is at most
//! a minute from now, and then moves `tat` there; a refused request changes nothing, so waiting
//! `Retry-After` always gets the next request through (in this process, when nothing else of the
//! same key and class got there first).
//!
//! Every tier's `limit × interval` is one minute, so a key's state is a debt measured in time and
//! keeps its meaning when the operator moves the key to another tier: the new tier applies from
//! the key's next request (authentication reads the tier from the store every time).
//!
//! Memory: a `tat` at or before `now` is a full budget, the same as no entry at all, so a sweep
//! drops those with no loss of information. Entries only exist for keys that authenticated (the
//! limiter runs after authentication), and an entry is gone at most two minutes after its key's
//! last request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::Method;
use actix_web::web;
use domain::api_key::RateLimitTier;
use domain::policy::Principal;
use domain::ApiKeyId;

use crate::error::ApiError;
use crate::ApiState;

/// The endpoint classes of API.md §1.7, each with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointClass {
    /// Every `GET` (and `HEAD`, `OPTIONS`: nothing that changes state).
    Read,
    /// `PATCH`, `DELETE`, and every `POST` that does not spend credits.
    Write,
    /// A `POST` that spends credits or starts work: listed in [`WORK_ROUTES`].
    Work,
}

impl EndpointClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Work => "work",
        }
    }
}

/// The routes that spend credits or start work, as actix names their patterns: a reservation,
/// and the webhook sends a caller asks for (a test ping, a replay: each an outbound delivery).
/// The one place a route becomes `work`; everything else follows from its method.
pub const WORK_ROUTES: [(Method, &str); 3] = [
    (Method::POST, "/v1/credits/reservations"),
    (Method::POST, "/v1/webhook-endpoints/{id}/test"),
    (Method::POST, "/v1/webhook-deliveries/{id}/replay"),
];

/// The class of a request, from its method and the pattern of the route it matched (`None` for
/// an unknown route, which is classed by its method alone).
pub fn endpoint_class(method: &Method, route: Option<&str>) -> EndpointClass {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        EndpointClass::Read
    } else if WORK_ROUTES
        .iter()
        .any(|(m, pattern)| m == method && Some(*pattern) == route)
    {
        EndpointClass::Work
    } else {
        EndpointClass::Write
    }
}

/// Requests per minute of a tier in a class (API.md §1.7); `None`: no limit.
pub fn per_minute(tier: RateLimitTier, class: EndpointClass) -> Option<u32> {
    use EndpointClass::{Read, Work, Write};
    let (read, write, work) = match tier {
        RateLimitTier::Standard | RateLimitTier::Sandbox => (120, 60, 20),
        RateLimitTier::Pilot => (1_200, 600, 60),
        RateLimitTier::Partner => (6_000, 3_000, 300),
        RateLimitTier::Unlimited => return None,
    };
    Some(match class {
        Read => read,
        Write => write,
        Work => work,
    })
}

/// The window every limit is counted over.
const PERIOD: Duration = Duration::from_secs(60);

/// How often idle entries are swept, at the latest.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Entries that trigger a sweep before [`SWEEP_EVERY`] has passed (doubled from what the last
/// sweep left, so sweeping stays amortised O(1) per request).
const MIN_SWEEP_SIZE: usize = 4_096;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No limit applies: the key's tier has none, or there is no key (public routes, `401`,
    /// authentication that could not read the store).
    Unlimited,
    /// Not counted (the kill switch refused it), but the key's budget is shown as it stands.
    NotCounted {
        limit: u32,
        remaining: u32,
        reset: Duration,
    },
    Admitted {
        limit: u32,
        /// Requests that could follow at once, back to back, before one is refused.
        remaining: u32,
        /// Until the budget is full again, if no other request comes.
        reset: Duration,
    },
    Refused {
        limit: u32,
        /// Until the next request of this key and class is admitted.
        retry_after: Duration,
        /// Until the budget is full again.
        reset: Duration,
    },
}

/// The in-process limiter: one GCRA state per (key, class). Shared by every worker of a server
/// process (it sits behind an `Arc` in [`ApiState`]); each process limits on its own.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Per (key, class): the instant the budget is full again. Always within a minute of the
    /// last admitted request.
    tat: HashMap<(ApiKeyId, EndpointClass), Instant>,
    next_sweep: Instant,
    sweep_above: usize,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    fn starting_at(now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                tat: HashMap::new(),
                next_sweep: now + SWEEP_EVERY,
                sweep_above: MIN_SWEEP_SIZE,
            }),
        }
    }

    /// Counts one request of `key` in `class` now, if the tier admits it.
    pub fn check(&self, key: ApiKeyId, class: EndpointClass, tier: RateLimitTier) -> Decision {
        self.check_at(key, class, tier, Instant::now())
    }

    /// [`Self::check`] at a given instant: the clock is a parameter so tests can drive it.
    pub fn check_at(
        &self,
        key: ApiKeyId,
        class: EndpointClass,
        tier: RateLimitTier,
        now: Instant,
    ) -> Decision {
        let Some(limit) = per_minute(tier, class) else {
            return Decision::Unlimited;
        };
        let interval = PERIOD / limit;
        let horizon = now + PERIOD;
        // The map holds plain values and every update is one assignment: a panic elsewhere
        // while the lock was held cannot have left it half-changed.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.sweep_if_due(now);
        let tat = state.full_at(key, class, now);
        let next = tat + interval;
        if next > horizon {
            return Decision::Refused {
                limit,
                retry_after: next - horizon,
                reset: tat - now,
            };
        }
        state.tat.insert((key, class), next);
        Decision::Admitted {
            limit,
            remaining: requests_before(horizon, next, interval, limit),
            reset: next - now,
        }
    }

    /// The budget of `key` in `class` as it stands at `now`, without counting a request.
    pub fn peek_at(
        &self,
        key: ApiKeyId,
        class: EndpointClass,
        tier: RateLimitTier,
        now: Instant,
    ) -> Decision {
        let Some(limit) = per_minute(tier, class) else {
            return Decision::Unlimited;
        };
        let tat = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .full_at(key, class, now);
        Decision::NotCounted {
            limit,
            remaining: requests_before(now + PERIOD, tat, PERIOD / limit, limit),
            reset: tat - now,
        }
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tat
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many requests, one `interval` each, fit between `tat` and `horizon`.
fn requests_before(horizon: Instant, tat: Instant, interval: Duration, limit: u32) -> u32 {
    let fit = horizon.saturating_duration_since(tat).as_nanos() / interval.as_nanos();
    u32::try_from(fit).unwrap_or(limit)
}

impl State {
    /// The instant the budget of `key` in `class` is full again; `now` when it already is.
    fn full_at(&self, key: ApiKeyId, class: EndpointClass, now: Instant) -> Instant {
        self.tat.get(&(key, class)).map_or(now, |&tat| tat.max(now))
    }

    fn sweep_if_due(&mut self, now: Instant) {
        if now < self.next_sweep && self.tat.len() <= self.sweep_above {
            return;
        }
        // A full budget is the same as no entry.
        self.tat.retain(|_, tat| *tat > now);
        self.next_sweep = now + SWEEP_EVERY;
        self.sweep_above = (self.tat.len() * 2).max(MIN_SWEEP_SIZE);
    }
}

/// The gate's rate-limit step for one admitted request: its class and what the limiter said.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    class: EndpointClass,
    decision: Decision,
}

/// Counts the request of an authenticated principal that passed the kill switch.
pub(crate) fn check(request: &ServiceRequest, principal: &Principal) -> Verdict {
    let class = class_of(request);
    let decision = match request.app_data::<web::Data<ApiState>>() {
        Some(state) => {
            state
                .rate_limiter
                .check(principal.key.id, class, principal.key.rate_limit_tier)
        }
        // Without the state the gate refuses the request anyway (500).
        None => Decision::Unlimited,
    };
    Verdict { class, decision }
}

/// A request the kill switch refused: not counted (after `resume` the key's budget is what it
/// was), but its answer shows the key's budget like any other.
pub(crate) fn show(request: &ServiceRequest, key: ApiKeyId, tier: RateLimitTier) -> Verdict {
    let class = class_of(request);
    let decision = match request.app_data::<web::Data<ApiState>>() {
        Some(state) => state.rate_limiter.peek_at(key, class, tier, Instant::now()),
        None => Decision::Unlimited,
    };
    Verdict { class, decision }
}

/// A request with no key to count it against: public routes, `401`, an authentication the store
/// could not answer. Nothing limits those, and the headers say so.
pub(crate) fn unmetered(method: &Method, route: Option<&str>) -> Verdict {
    Verdict {
        class: endpoint_class(method, route),
        decision: Decision::Unlimited,
    }
}

fn class_of(request: &ServiceRequest) -> EndpointClass {
    endpoint_class(request.method(), request.match_pattern().as_deref())
}

/// What `X-RateLimit-Limit` and `X-RateLimit-Remaining` say when no limit applies: the largest
/// number the headers carry, so a client that reads them as integers needs no special case.
const NO_LIMIT: u32 = u32::MAX;

impl Verdict {
    /// `429 RATE_LIMITED` when the limiter refused.
    pub(crate) fn enforce(&self) -> Result<(), ApiError> {
        match self.decision {
            Decision::Refused {
                limit, retry_after, ..
            } => Err(ApiError::rate_limited(
                self.class.as_str(),
                limit,
                whole_seconds(retry_after),
            )),
            Decision::Unlimited | Decision::Admitted { .. } | Decision::NotCounted { .. } => Ok(()),
        }
    }

    /// The `X-RateLimit-*` headers, and `Retry-After` on a refusal.
    pub(crate) fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            HeaderName::from_static("x-ratelimit-endpoint-class"),
            HeaderValue::from_static(self.class.as_str()),
        );
        let (limit, remaining, reset) = match self.decision {
            Decision::Unlimited => (NO_LIMIT, NO_LIMIT, Duration::ZERO),
            Decision::Admitted {
                limit,
                remaining,
                reset,
            }
            | Decision::NotCounted {
                limit,
                remaining,
                reset,
            } => (limit, remaining, reset),
            Decision::Refused {
                limit,
                retry_after,
                reset,
            } => {
                headers.insert(RETRY_AFTER, whole_seconds(retry_after).into());
                (limit, 0, reset)
            }
        };
        headers.insert(HeaderName::from_static("x-ratelimit-limit"), limit.into());
        headers.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            remaining.into(),
        );
        headers.insert(
            HeaderName::from_static("x-ratelimit-reset"),
            rounded_up_seconds(reset).into(),
        );
    }
}

/// Whole seconds, rounded up (waiting that long is always enough), at least 1.
fn whole_seconds(duration: Duration) -> u64 {
    rounded_up_seconds(duration).max(1)
}

/// Whole seconds, rounded up: `0` only for no time at all (a full budget).
fn rounded_up_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> ApiKeyId {
        ApiKeyId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn admitted(decision: Decision) -> (u32, u32, Duration) {
        match decision {
            Decision::Admitted {
                limit,
                remaining,
                reset,
            } => (limit, remaining, reset),
            other => panic!("refused: {other:?}"),
        }
    }

    fn refused(decision: Decision) -> Duration {
        match decision {
            Decision::Refused { retry_after, .. } => retry_after,
            other => panic!("admitted: {other:?}"),
        }
    }

    const ALL_TIERS: [RateLimitTier; 5] = [
        RateLimitTier::Standard,
        RateLimitTier::Pilot,
        RateLimitTier::Partner,
        RateLimitTier::Sandbox,
        RateLimitTier::Unlimited,
    ];

    #[test]
    fn the_tier_table_is_the_contracts() {
        use EndpointClass::{Read, Work, Write};
        let table: Vec<_> = ALL_TIERS
            .iter()
            .map(|&tier| {
                (
                    tier.as_str(),
                    per_minute(tier, Read),
                    per_minute(tier, Write),
                    per_minute(tier, Work),
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("standard", Some(120), Some(60), Some(20)),
                ("pilot", Some(1_200), Some(600), Some(60)),
                ("partner", Some(6_000), Some(3_000), Some(300)),
                ("sandbox", Some(120), Some(60), Some(20)),
                ("unlimited", None, None, None),
            ]
        );
    }

    #[test]
    fn every_interval_is_exact() {
        // The whole budget is always exactly one minute of debt: no rounding drift.
        for tier in ALL_TIERS {
            for class in [
                EndpointClass::Read,
                EndpointClass::Write,
                EndpointClass::Work,
            ] {
                if let Some(limit) = per_minute(tier, class) {
                    assert_eq!((PERIOD / limit) * limit, PERIOD, "{tier} {class:?}");
                }
            }
        }
    }

    #[test]
    fn classes_follow_the_method_and_the_work_routes() {
        use EndpointClass::{Read, Work, Write};
        let cases = [
            (Method::GET, Some("/v1/whoami"), Read),
            (Method::GET, Some("/v1/organizations/{orgId}"), Read),
            (Method::GET, Some("/v1/credits/reservations/{id}"), Read),
            (Method::GET, None, Read),
            (Method::HEAD, Some("/v1/organizations"), Read),
            (Method::POST, Some("/v1/organizations"), Write),
            (
                Method::POST,
                Some("/v1/organizations/{orgId}/suspend"),
                Write,
            ),
            (
                Method::POST,
                Some("/v1/organizations/{orgId}/resume"),
                Write,
            ),
            (
                Method::POST,
                Some("/v1/organizations/{orgId}/api-keys"),
                Write,
            ),
            (
                Method::POST,
                Some("/v1/organizations/{orgId}/credits/allocate"),
                Write,
            ),
            (Method::PATCH, Some("/v1/organizations/{orgId}"), Write),
            (Method::DELETE, Some("/v1/organizations/{orgId}"), Write),
            (Method::POST, None, Write),
            (Method::PUT, Some("/v1/credits/reservations"), Write),
            (Method::POST, Some("/v1/credits/reservations"), Work),
            (Method::POST, Some("/v1/webhook-endpoints"), Write),
            (Method::GET, Some("/v1/webhook-endpoints/{id}"), Read),
            (Method::PATCH, Some("/v1/webhook-endpoints/{id}"), Write),
            (Method::DELETE, Some("/v1/webhook-endpoints/{id}"), Write),
            (
                Method::GET,
                Some("/v1/webhook-endpoints/{id}/deliveries"),
                Read,
            ),
            (Method::POST, Some("/v1/webhook-endpoints/{id}/test"), Work),
            (
                Method::POST,
                Some("/v1/webhook-deliveries/{id}/replay"),
                Work,
            ),
            (Method::GET, Some("/v1/audit-log"), Read),
        ];
        for (method, route, class) in cases {
            assert_eq!(endpoint_class(&method, route), class, "{method} {route:?}");
        }
    }

    #[test]
    fn a_burst_of_the_limit_is_admitted_counting_down_then_refused() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        let tier = RateLimitTier::Standard;
        for i in 0..120 {
            let (limit, remaining, reset) =
                admitted(limiter.check_at(key(1), EndpointClass::Read, tier, start));
            assert_eq!((limit, remaining), (120, 119 - i));
            assert_eq!(reset, Duration::from_millis(500) * (i + 1));
        }
        let decision = limiter.check_at(key(1), EndpointClass::Read, tier, start);
        assert_eq!(
            decision,
            Decision::Refused {
                limit: 120,
                retry_after: Duration::from_millis(500),
                reset: PERIOD,
            }
        );
        // A refusal is not counted: honouring Retry-After is enough.
        let retry = refused(limiter.check_at(key(1), EndpointClass::Read, tier, start));
        assert_eq!(retry, Duration::from_millis(500));
        let just_before = start + retry - Duration::from_nanos(1);
        refused(limiter.check_at(key(1), EndpointClass::Read, tier, just_before));
        let (_, remaining, _) =
            admitted(limiter.check_at(key(1), EndpointClass::Read, tier, start + retry));
        assert_eq!(remaining, 0);
    }

    #[test]
    fn the_budget_refills_evenly_and_never_beyond_the_limit() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        let tier = RateLimitTier::Standard;
        for _ in 0..60 {
            limiter.check_at(key(1), EndpointClass::Write, tier, start);
        }
        refused(limiter.check_at(key(1), EndpointClass::Write, tier, start));
        // One request a second: 10 s later, 10 are back (one spent now leaves 9).
        let later = start + Duration::from_secs(10);
        let (_, remaining, reset) =
            admitted(limiter.check_at(key(1), EndpointClass::Write, tier, later));
        assert_eq!((remaining, reset), (9, Duration::from_secs(51)));
        // Idle for an hour: a full budget, not more.
        let hour = start + Duration::from_secs(3_600);
        let (_, remaining, reset) =
            admitted(limiter.check_at(key(1), EndpointClass::Write, tier, hour));
        assert_eq!((remaining, reset), (59, Duration::from_secs(1)));
    }

    #[test]
    fn a_peek_shows_the_budget_and_counts_nothing() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        let tier = RateLimitTier::Standard;
        let fresh = limiter.peek_at(key(1), EndpointClass::Read, tier, start);
        assert_eq!(
            fresh,
            Decision::NotCounted {
                limit: 120,
                remaining: 120,
                reset: Duration::ZERO,
            }
        );
        for _ in 0..10 {
            admitted(limiter.check_at(key(1), EndpointClass::Read, tier, start));
        }
        for _ in 0..3 {
            assert_eq!(
                limiter.peek_at(key(1), EndpointClass::Read, tier, start),
                Decision::NotCounted {
                    limit: 120,
                    remaining: 110,
                    reset: Duration::from_secs(5),
                }
            );
        }
        let (_, remaining, _) =
            admitted(limiter.check_at(key(1), EndpointClass::Read, tier, start));
        assert_eq!(remaining, 109, "the peeks counted nothing");
        assert_eq!(
            limiter.peek_at(key(1), EndpointClass::Read, RateLimitTier::Unlimited, start),
            Decision::Unlimited
        );
    }

    #[test]
    fn keys_and_classes_have_budgets_of_their_own() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        let tier = RateLimitTier::Standard;
        for _ in 0..20 {
            admitted(limiter.check_at(key(1), EndpointClass::Work, tier, start));
        }
        refused(limiter.check_at(key(1), EndpointClass::Work, tier, start));
        let (_, remaining, _) =
            admitted(limiter.check_at(key(1), EndpointClass::Read, tier, start));
        assert_eq!(remaining, 119);
        let (_, remaining, _) =
            admitted(limiter.check_at(key(1), EndpointClass::Write, tier, start));
        assert_eq!(remaining, 59);
        let (_, remaining, _) =
            admitted(limiter.check_at(key(2), EndpointClass::Work, tier, start));
        assert_eq!(remaining, 19);
    }

    #[test]
    fn unlimited_never_limits_and_holds_no_state() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        for _ in 0..100_000 {
            assert_eq!(
                limiter.check_at(key(1), EndpointClass::Work, RateLimitTier::Unlimited, start),
                Decision::Unlimited
            );
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_new_tier_applies_to_the_next_request_with_the_debt_carried_over() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        for _ in 0..60 {
            admitted(limiter.check_at(
                key(1),
                EndpointClass::Write,
                RateLimitTier::Standard,
                start,
            ));
        }
        refused(limiter.check_at(key(1), EndpointClass::Write, RateLimitTier::Standard, start));
        // The whole minute is spent on standard; on pilot it is the whole minute too.
        refused(limiter.check_at(key(1), EndpointClass::Write, RateLimitTier::Pilot, start));
        let soon = start + Duration::from_millis(100);
        let (limit, remaining, _) =
            admitted(limiter.check_at(key(1), EndpointClass::Write, RateLimitTier::Pilot, soon));
        assert_eq!((limit, remaining), (600, 0));
    }

    #[test]
    fn idle_keys_are_evicted() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        for n in 0..1_000 {
            admitted(limiter.check_at(key(n), EndpointClass::Read, RateLimitTier::Standard, start));
        }
        assert_eq!(limiter.len(), 1_000);
        // A sweep is due after a minute; every budget above is full again by then.
        let later = start + SWEEP_EVERY;
        admitted(limiter.check_at(
            key(5_000),
            EndpointClass::Read,
            RateLimitTier::Standard,
            later,
        ));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn many_busy_keys_trigger_a_sweep_before_the_minute() {
        let start = Instant::now();
        let limiter = RateLimiter::starting_at(start);
        let tier = RateLimitTier::Partner;
        // Each key spends 10 ms of debt; the clock moves 1 ms per key.
        for n in 0..(MIN_SWEEP_SIZE as u128 + 100) {
            let now = start + Duration::from_millis(n as u64);
            admitted(limiter.check_at(key(n), EndpointClass::Read, tier, now));
        }
        assert!(
            limiter.len() < MIN_SWEEP_SIZE,
            "swept when the map outgrew its bound: {}",
            limiter.len()
        );
    }

    #[test]
    fn header_seconds_round_up_and_are_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(500)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }

    #[test]
    fn headers_on_admission_refusal_peek_and_unlimited() {
        // (class, decision) → class, limit, remaining, reset, retry-after
        let cases = [
            (
                EndpointClass::Read,
                Decision::Admitted {
                    limit: 120,
                    remaining: 7,
                    reset: Duration::from_millis(56_500),
                },
                ["read", "120", "7", "57", "-"],
            ),
            (
                EndpointClass::Write,
                Decision::Refused {
                    limit: 60,
                    retry_after: Duration::from_millis(300),
                    reset: PERIOD,
                },
                ["write", "60", "0", "60", "1"],
            ),
            (
                EndpointClass::Write,
                Decision::NotCounted {
                    limit: 60,
                    remaining: 60,
                    reset: Duration::ZERO,
                },
                ["write", "60", "60", "0", "-"],
            ),
            (
                EndpointClass::Work,
                Decision::Unlimited,
                ["work", "4294967295", "4294967295", "0", "-"],
            ),
        ];
        for (class, decision, expected) in cases {
            let mut headers = HeaderMap::new();
            Verdict { class, decision }.write_headers(&mut headers);
            let shown = [
                "x-ratelimit-endpoint-class",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "retry-after",
            ]
            .map(|name| headers.get(name).map_or("-", |v| v.to_str().unwrap()));
            assert_eq!(shown, expected, "{decision:?}");
        }
    }

    /// The patterns the gate sees are the ones [`WORK_ROUTES`] lists: full paths with
    /// `{param}` placeholders, in the unnamed scope the API is mounted in.
    #[actix_web::test]
    async fn the_gate_sees_route_patterns_as_listed() {
        use actix_web::middleware::{from_fn, Next};
        use actix_web::{body::MessageBody, test, App, HttpResponse};

        async fn ok() -> HttpResponse {
            HttpResponse::Ok().finish()
        }

        async fn classify(
            request: ServiceRequest,
            next: Next<impl MessageBody + 'static>,
        ) -> Result<actix_web::dev::ServiceResponse<impl MessageBody>, actix_web::Error> {
            let class = endpoint_class(request.method(), request.match_pattern().as_deref());
            let mut response = next.call(request).await?;
            response.headers_mut().insert(
                HeaderName::from_static("x-class"),
                HeaderValue::from_static(class.as_str()),
            );
            Ok(response)
        }

        let app = test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(from_fn(classify))
                    .service(web::resource("/v1/credits/reservations").route(web::post().to(ok)))
                    .service(
                        web::resource("/v1/credits/reservations/{id}/settle")
                            .route(web::post().to(ok)),
                    )
                    .default_service(web::to(ok)),
            ),
        )
        .await;
        for (uri, class) in [
            ("/v1/credits/reservations", "work"),
            ("/v1/credits/reservations/rsv_1/settle", "write"),
            ("/v1/unknown", "write"),
        ] {
            let request = test::TestRequest::post().uri(uri).to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(
                response.headers().get("x-class").unwrap(),
                class,
                "POST {uri}"
            );
        }
    }
}
