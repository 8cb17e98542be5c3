//! Organizations: the entity, its validated fields, and the lifecycle state machine.

mod billing_email;
mod entity;
pub mod lifecycle;
mod metadata;
mod name;

pub use billing_email::BillingEmail;
pub use entity::{Organization, OrganizationStatus, Revision, StatusKind};
pub use lifecycle::{LifecycleAction, LifecycleError, Transition};
pub use metadata::{Metadata, MetadataPatch};
pub use name::OrganizationName;
