use super::ControlPlane;
use crate::api_key::PresentedKey;
use crate::policy::{self, Principal};
use crate::DomainError;

impl ControlPlane {
    /// Admits a request by its bearer key (API.md §2.1, §3): the key must parse, exist, carry the
    /// stored env, match the stored hash and be active; then the kill switch must be off for its
    /// organization and that organization's parent. Every refusal before the kill switch is the
    /// same `Unauthenticated`.
    ///
    /// Reads the store on every call, with no cache, so a suspension committed by any process is
    /// seen by the very next request on every process.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, DomainError> {
        let presented = PresentedKey::parse(bearer).ok_or(DomainError::Unauthenticated)?;
        let credentials = self
            .ports
            .api_keys
            .find_credentials(&presented.handle)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        let key = &credentials.key;
        if key.env != presented.env
            || !key.secret_hash.matches(presented.secret())
            || !key.is_active()
        {
            return Err(DomainError::Unauthenticated);
        }
        policy::kill_switch(&credentials).map_err(DomainError::KillSwitch)?;
        Ok(Principal {
            key: credentials.key,
            organization: credentials.organization,
        })
    }
}
