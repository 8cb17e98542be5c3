//! The one error type of the HTTP layer and its envelope (API.md §1.2). Every non-2xx response
//! of the API is rendered here; a 5xx logs its cause and never shows it.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::error::{ConflictSubject, KillScope, KillSwitch, Resource};
use domain::ports::StoreError;
use domain::validation::FieldError;
use domain::DomainError;
use serde_json::{json, Value};

use crate::dto::{ErrorBody, ErrorEnvelope};
use crate::{request_id, wire_time};

/// The stable, machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    ForbiddenScope,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    Validation,
    PlatformError,
    Unavailable,
    KillSwitch,
    RateLimited,
    IdempotencyConflict,
    IdempotencyRequired,
    BillingExhausted,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::ForbiddenScope => "FORBIDDEN_SCOPE",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Validation => "VALIDATION",
            Self::PlatformError => "PLATFORM_ERROR",
            Self::Unavailable => "UNAVAILABLE",
            Self::KillSwitch => "KILL_SWITCH",
            Self::RateLimited => "RATE_LIMITED",
            Self::IdempotencyConflict => "IDEMPOTENCY_CONFLICT",
            Self::IdempotencyRequired => "IDEMPOTENCY_REQUIRED",
            Self::BillingExhausted => "BILLING_EXHAUSTED",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::ForbiddenScope => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::IdempotencyConflict => StatusCode::CONFLICT,
            Self::IdempotencyRequired => StatusCode::BAD_REQUEST,
            Self::BillingExhausted => StatusCode::PAYMENT_REQUIRED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PlatformError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::KillSwitch => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// Boxed so that `Result<T, ApiError>` stays small on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<Problem>);

#[derive(Debug)]
struct Problem {
    code: ErrorCode,
    message: String,
    details: Value,
    /// What went wrong inside, for the log of a 5xx; never sent.
    cause: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Box::new(Problem {
            code,
            message: message.into(),
            details: json!({}),
            cause: None,
        }))
    }

    fn with_details(mut self, details: Value) -> Self {
        self.0.details = details;
        self
    }

    fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.0.cause = Some(cause.to_string());
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// A refusal of the request as sent (4xx), as opposed to a failure on our side (5xx).
    pub fn is_client_error(&self) -> bool {
        self.status_code().is_client_error()
    }

    /// The envelope as bytes: the body of the response, and what an idempotency record keeps.
    pub fn envelope(&self) -> Vec<u8> {
        let problem = &self.0;
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: problem.code.as_str(),
                message: &problem.message,
                request_id: request_id::current(),
                details: &problem.details,
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    #[cfg(test)]
    pub fn details(&self) -> &Value {
        &self.0.details
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.first() {
            Some(first) => format!("The request is invalid: {} {}.", first.field, first.message),
            None => "The request is invalid.".to_owned(),
        };
        let fields: Vec<Value> = fields
            .iter()
            .map(|f| json!({"field": f.field, "message": f.message}))
            .collect();
        Self::new(ErrorCode::Validation, message).with_details(json!({ "fields": fields }))
    }

    pub fn invalid(field: &str, message: &str) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found_route() -> Self {
        Self::new(ErrorCode::NotFound, "There is no such route.")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "This route does not accept this HTTP method.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than {} KiB.", limit / 1024),
        )
        .with_details(json!({ "limitBytes": limit }))
    }

    pub fn platform(cause: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::PlatformError,
            "Something went wrong on our side. Retrying later may help.",
        )
        .with_cause(cause)
    }

    /// `429`: the key's budget for this endpoint class is spent (API.md §1.7). The gate adds
    /// `Retry-After` and the `X-RateLimit-*` headers.
    pub fn rate_limited(class: &str, limit: u32, retry_after_secs: u64) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            format!(
                "Too many requests: this API key may make {limit} {class} requests a minute. Retry after {retry_after_secs} s."
            ),
        )
        .with_details(json!({
            "endpointClass": class,
            "limit": limit,
            "retryAfterSeconds": retry_after_secs,
        }))
    }

    fn kill_switch(kill: KillSwitch) -> Self {
        let organization_id = kill.organization_id.to_string();
        let suspended_at = wire_time::other(kill.suspended_at);
        match kill.scope {
            KillScope::Organization => Self::new(
                ErrorCode::KillSwitch,
                "This organization is suspended: its API keys are refused until it is resumed.",
            )
            .with_details(json!({
                "scope": "organization",
                "organizationId": organization_id,
                "suspendedAt": suspended_at,
            })),
            KillScope::Key(key) => Self::new(
                ErrorCode::KillSwitch,
                "This API key was killed: it is refused for good. Use another key of the organization.",
            )
            .with_details(json!({
                "scope": "key",
                "apiKeyId": key.to_string(),
                "organizationId": organization_id,
                "suspendedAt": suspended_at,
            })),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Unauthenticated => Self::new(
                ErrorCode::Unauthenticated,
                "The API key is missing or invalid. Send it as: Authorization: Bearer <key>.",
            ),
            DomainError::KillSwitch(kill) => Self::kill_switch(kill),
            DomainError::ForbiddenScope { required } => Self::new(
                ErrorCode::ForbiddenScope,
                format!("This API key lacks the scope {required} that this request needs."),
            )
            .with_details(json!({ "requiredScope": required.as_str() })),
            DomainError::Validation(fields) => Self::validation(fields),
            DomainError::NotFound(resource) => Self::new(
                ErrorCode::NotFound,
                match resource {
                    Resource::Organization => {
                        "No such organization among the direct children of your organization."
                    }
                    Resource::ApiKey => "No such API key in this organization.",
                    Resource::Reservation => "No such reservation in this organization.",
                    Resource::WebhookEndpoint => "No such webhook endpoint in this organization.",
                    Resource::WebhookDelivery => {
                        "No such webhook delivery to an endpoint of this organization."
                    }
                },
            ),
            DomainError::Conflict { message, subject } => {
                let details = match subject {
                    ConflictSubject::Organization { id, status } => json!({
                        "organizationId": id.to_string(),
                        "status": status.as_str(),
                    }),
                    ConflictSubject::ApiKey { id, status } => json!({
                        "apiKeyId": id.to_string(),
                        "status": status,
                    }),
                    ConflictSubject::Reservation { id, status } => json!({
                        "reservationId": id.to_string(),
                        "status": status,
                    }),
                    ConflictSubject::WebhookEndpoint { id, status } => json!({
                        "endpointId": id.to_string(),
                        "status": status,
                    }),
                };
                Self::new(ErrorCode::Conflict, capitalize(&message)).with_details(details)
            }
            DomainError::InsufficientCredits {
                available,
                requested,
            } => Self::new(
                ErrorCode::BillingExhausted,
                format!("Not enough credits: {available} available, {requested} requested."),
            )
            .with_details(json!({
                "reason": "insufficient_credits",
                "available": available,
                "requested": requested,
            })),
            DomainError::MonthlyCapReached {
                cap,
                committed,
                requested,
            } => Self::new(
                ErrorCode::BillingExhausted,
                format!("The monthly cap of {cap} credits would be passed: {committed} spent or held this month, {requested} requested."),
            )
            .with_details(json!({
                "reason": "monthly_cap",
                "monthlyCreditCap": cap,
                "committed": committed,
                "requested": requested,
            })),
            DomainError::Store(StoreError::Unavailable(cause)) => Self::new(
                ErrorCode::Unavailable,
                "The service is temporarily unavailable. Retry shortly.",
            )
            .with_cause(cause),
            DomainError::Store(other) => Self::platform(other),
        }
    }
}

fn capitalize(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code.as_str(), self.0.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let problem = &self.0;
        if let Some(cause) = &problem.cause {
            let request_id = request_id::current();
            tracing::error!(request_id = %request_id, code = problem.code.as_str(), cause = %cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        match problem.code {
            ErrorCode::Unavailable => {
                response.insert_header(("Retry-After", "1"));
            }
            // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
            ErrorCode::Unauthenticated => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response
            .content_type("application/json")
            .body(self.envelope())
    }
}
