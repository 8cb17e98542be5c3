use actix_web::HttpResponse;

use super::Caller;
use crate::dto::{ErrorEnvelope, WhoamiDto};

/// Who am I: the calling key and its organization. Needs no scope. A `200` means the
/// organization is not suspended.
#[utoipa::path(get, path = "/v1/whoami", tag = "keys",
    responses(
        (status = 200, body = WhoamiDto),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH: the key's organization is suspended", body = ErrorEnvelope)))]
pub async fn whoami(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(WhoamiDto::from(&caller.0))
}
