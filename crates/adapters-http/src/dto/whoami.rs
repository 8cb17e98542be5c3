use domain::policy::Principal;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /v1/whoami` (API.md §5.3). A `200` here is itself the "not suspended" signal.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoamiDto {
    pub organization_id: String,
    pub organization_name: String,
    pub parent_organization_id: Option<String>,
    pub api_key_id: String,
    pub scopes: Vec<&'static str>,
    pub env: &'static str,
    pub rate_limit_tier: &'static str,
}

impl From<&Principal> for WhoamiDto {
    fn from(principal: &Principal) -> Self {
        let (org, key) = (&principal.organization, &principal.key);
        Self {
            organization_id: org.id.to_string(),
            organization_name: org.name.as_str().to_owned(),
            parent_organization_id: org.parent_id.map(|id| id.to_string()),
            api_key_id: key.id.to_string(),
            scopes: key.scopes.iter().map(|s| s.as_str()).collect(),
            env: key.env.as_str(),
            rate_limit_tier: key.rate_limit_tier.as_str(),
        }
    }
}
