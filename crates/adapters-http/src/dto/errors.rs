use serde::Serialize;
use utoipa::ToSchema;

/// Every non-2xx response (API.md §1.2).
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope<'a> {
    pub error: ErrorBody<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// Stable, machine-readable: UNAUTHENTICATED, FORBIDDEN_SCOPE, NOT_FOUND, METHOD_NOT_ALLOWED,
    /// CONFLICT, PAYLOAD_TOO_LARGE, VALIDATION, PLATFORM_ERROR, UNAVAILABLE, KILL_SWITCH.
    #[schema(example = "NOT_FOUND")]
    pub code: &'a str,
    /// For humans.
    pub message: &'a str,
    /// Equals the `X-Request-Id` header.
    #[schema(example = "req_01HXZ9G7KMV2QX8Y1S5RJW3B7T")]
    pub request_id: String,
    /// Always an object. VALIDATION: `{"fields": [FieldError]}`; FORBIDDEN_SCOPE:
    /// `{"requiredScope"}`; CONFLICT: `{"organizationId", "status"}` (or `apiKeyId`,
    /// `reservationId`, `endpointId` with its `status`); KILL_SWITCH:
    /// `{"scope", "organizationId", "suspendedAt"}`.
    #[schema(value_type = Object)]
    pub details: &'a serde_json::Value,
}

/// One entry of `details.fields` of a VALIDATION error.
#[allow(dead_code)] // Only read by the OpenAPI generator; `ApiError` writes these as JSON.
#[derive(ToSchema)]
pub struct FieldErrorDto {
    pub field: String,
    pub message: String,
}
