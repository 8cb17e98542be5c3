//! The use cases: what a caller can ask of the control plane. Each one checks the policy, validates
//! its input into domain values, decides with the pure domain functions, and persists through the
//! ports. [`ControlPlane`] is the one entry point, for the HTTP adapter and for Rust services
//! embedding the domain alike.

mod api_keys;
mod audit;
mod authenticate;
mod credits;
mod idempotency;
mod jobs;
mod key_usage;
mod operator;
mod organizations;
mod own_keys;
mod recording;
mod webhooks;

use std::sync::Arc;

use uuid::Uuid;

use crate::ports::{
    ApiKeyStore, AuditLog, Clock, CreditStore, IdempotencyStore, JobQueue, OrganizationStore,
    Presenter, RandomSource, WebhookSender, WebhookStore,
};

pub use api_keys::{MintedKey, NewApiKey, RotatedKey, ROTATION_GRACE};
pub use authenticate::{RequestContext, ACTING_HEADER};
pub use credits::{AllocationReport, CreditsView, NewAllocation, NewReservation};
pub use key_usage::KeyUsage;
pub use operator::{Bootstrap, BootstrapOutcome};
pub use organizations::{ArchiveReport, NewOrganization, OrganizationPatch, OrganizationSummary};
pub use webhooks::{EndpointPatch, NewEndpoint};

/// The adapters a [`ControlPlane`] runs on.
#[derive(Clone)]
pub struct Ports {
    pub organizations: Arc<dyn OrganizationStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub credits: Arc<dyn CreditStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub audit: Arc<dyn AuditLog>,
    pub webhooks: Arc<dyn WebhookStore>,
    /// Sends webhook deliveries (the outbound HTTP adapter).
    pub sender: Arc<dyn WebhookSender>,
    /// Renders webhook bodies and audit data in the API's wire format.
    pub presenter: Arc<dyn Presenter>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn RandomSource>,
}

#[derive(Clone)]
pub struct ControlPlane {
    ports: Ports,
    usage: Arc<KeyUsage>,
}

impl ControlPlane {
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            usage: Arc::default(),
        }
    }

    /// The current instant, from the clock port: what responses that depend on time (a rotated
    /// key's status) are computed at.
    pub fn now(&self) -> crate::Timestamp {
        self.ports.clock.now()
    }

    /// A ledger event id (a ULID) for an event at `at`.
    fn new_ledger_event_id(&self, at: crate::Timestamp) -> crate::credits::LedgerEventId {
        let mut random = [0u8; 10];
        self.ports.random.fill(&mut random);
        crate::credits::LedgerEventId::new(at, random)
    }

    /// A random (v4) UUID from the random port.
    fn new_uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.ports.random.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// How many times a use case re-reads and retries after losing a compare-and-set race. Each loss
/// means another writer made progress, so this bounds only pathological contention.
const MAX_ATTEMPTS: usize = 64;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
