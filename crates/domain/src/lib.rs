//! The domain of the partner control plane: organizations and their lifecycle (the kill switch),
//! API keys and scopes, the access policy, the use cases, and the ports the adapters implement.
//!
//! Pure by design: no async runtime, no database, no HTTP, no I/O. Everything the domain needs
//! from the outside world (storage, time, randomness) comes through a port in [`ports`].

pub mod api_key;
pub mod audit;
pub mod credits;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod organization;
pub mod pagination;
pub mod policy;
pub mod ports;
pub mod timestamp;
pub mod trail;
pub mod use_cases;
pub mod validation;
pub mod webhooks;

pub use error::DomainError;
pub use ids::{ApiKeyId, IdParseError, OrganizationId};
pub use timestamp::Timestamp;
