//! Fixtures for the use-case tests: mocks of every port and a principal to call with.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use uuid::Uuid;

use super::{ControlPlane, Ports};
use crate::api_key::{
    ApiKey, KeyEnv, KeyName, KeyStatus, MintedSecret, RateLimitTier, Scope, Scopes,
};
use crate::organization::{Metadata, Organization, OrganizationName, OrganizationStatus, Revision};
use crate::policy::Principal;
use crate::ports::{
    MockApiKeyStore, MockAuditLog, MockClock, MockCreditStore, MockIdempotencyStore, MockJobQueue,
    MockOrganizationStore, MockPresenter, MockRandomSource, MockWebhookSender, MockWebhookStore,
};
use crate::{ApiKeyId, OrganizationId, Timestamp};

pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_780_000_000_000_000 + micros).unwrap()
}

pub const NOW: i64 = 5_000;

pub struct Mocks {
    pub organizations: MockOrganizationStore,
    pub api_keys: MockApiKeyStore,
    pub credits: MockCreditStore,
    pub jobs: MockJobQueue,
    pub audit: MockAuditLog,
    pub webhooks: MockWebhookStore,
    pub sender: MockWebhookSender,
}

impl Mocks {
    pub fn new() -> Self {
        Self {
            organizations: MockOrganizationStore::new(),
            api_keys: MockApiKeyStore::new(),
            credits: MockCreditStore::new(),
            jobs: MockJobQueue::new(),
            audit: MockAuditLog::new(),
            webhooks: MockWebhookStore::new(),
            sender: MockWebhookSender::new(),
        }
    }

    /// A control plane on these mocks, a clock stopped at `at(NOW)`, and a counting random source.
    pub fn control_plane(self) -> ControlPlane {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| at(NOW));
        let counter = AtomicU8::new(1);
        let mut random = MockRandomSource::new();
        random.expect_fill().returning(move |buffer: &mut [u8]| {
            let next = counter.fetch_add(1, Ordering::Relaxed);
            buffer.fill(next);
        });
        ControlPlane::new(Ports {
            organizations: Arc::new(self.organizations),
            api_keys: Arc::new(self.api_keys),
            credits: Arc::new(self.credits),
            jobs: Arc::new(self.jobs),
            idempotency: Arc::new(MockIdempotencyStore::new()),
            audit: Arc::new(self.audit),
            webhooks: Arc::new(self.webhooks),
            sender: Arc::new(self.sender),
            presenter: Arc::new(presenter()),
            clock: Arc::new(clock),
            random: Arc::new(random),
        })
    }
}

/// Renders what it is given in a form the tests can read back: the event type, or the audit data.
fn presenter() -> MockPresenter {
    let mut presenter = MockPresenter::new();
    presenter
        .expect_event_body()
        .returning(|draft| format!("{{\"type\":\"{}\"}}", draft.event_type));
    presenter
        .expect_replay_body()
        .returning(|original, id, _| format!("{original} replayed as {id}"));
    presenter
        .expect_audit_data()
        .returning(|data| format!("{data:?}"));
    presenter
}

pub fn org(parent: Option<OrganizationId>, status: OrganizationStatus) -> Organization {
    Organization {
        id: OrganizationId::from_uuid(Uuid::new_v4()),
        parent_id: parent,
        name: OrganizationName::parse("Acme Coffee").unwrap(),
        status,
        metadata: Metadata::default(),
        billing_email: None,
        created_at: at(0),
        updated_at: at(0),
        revision: Revision::INITIAL,
    }
}

pub fn key(organization: &Organization, scopes: &[Scope]) -> (ApiKey, MintedSecret) {
    let secret = MintedSecret::new(KeyEnv::Live, [3; 10], [4; 32]);
    let key = ApiKey {
        id: ApiKeyId::from_uuid(Uuid::new_v4()),
        organization_id: organization.id,
        name: KeyName::parse("k").unwrap(),
        env: KeyEnv::Live,
        handle: secret.handle.clone(),
        secret_hash: secret.hash.clone(),
        scopes: Scopes::new(scopes.iter().copied()),
        rate_limit_tier: RateLimitTier::Standard,
        status: KeyStatus::Active,
        created_at: at(0),
        last_used_at: None,
        rotated_at: None,
        superseded: None,
    };
    (key, secret)
}

/// A top-level partner holding `scopes`.
pub fn partner(scopes: &[Scope]) -> Principal {
    let organization = org(None, OrganizationStatus::Active);
    let (key, _) = key(&organization, scopes);
    Principal {
        key,
        organization,
        acting: None,
        request_id: Some("req_test".to_owned()),
    }
}

pub fn admin() -> Principal {
    partner(&[Scope::AllData, Scope::OrgAdmin])
}
