//! API keys: the secret format, scopes, rate-limit tiers and the key entity (API.md §2, §5).

mod entity;
mod scope;
mod secret;

pub use entity::{ApiKey, KeyName, KeyState, KeyStatus, RateLimitTier, Supersession};
pub use scope::{Scope, Scopes};
pub use secret::{KeyEnv, KeyHandle, MintedSecret, PresentedKey, SecretHash};
