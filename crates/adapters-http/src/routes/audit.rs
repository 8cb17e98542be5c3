//! The audit log (API.md §9).

use actix_web::{web, HttpRequest, HttpResponse};
use domain::api_key::Scope;
use domain::audit::{AuditEventType, AuditFilter};
use domain::pagination::PageRequest;

use super::Caller;
use crate::dto::{AuditEventDto, AuditList, ErrorEnvelope};
use crate::error::ApiError;
use crate::query::Query;
use crate::{cursor, ApiState};

const LIST: &str = "audit_log";

/// The acting organization's audit log, newest first: the key's own organization's, or — with
/// `X-Layers-Organization` — a direct child's, archived children included.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit",
    params(
        ("eventType" = Option<String>, Query, description = "one audit event type, e.g. organization.suspended or kill_switch.refused"),
        ("since" = Option<String>, Query, description = "inclusive, Z form, e.g. 2026-06-01T00:00:00.000Z"),
        ("until" = Option<String>, Query, description = "inclusive, Z form"),
        ("limit" = Option<usize>, Query, description = "1-200, default 25"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses(
        (status = 200, body = AuditList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorEnvelope),
        (status = 403, description = "FORBIDDEN_SCOPE: needs audit:read", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION: a bad eventType, since, until, limit or cursor", body = ErrorEnvelope),
        (status = 503, description = "KILL_SWITCH or UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn audit_log(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::AuditRead)?;
    let (filter, page_request) = audit_query(&request)?;
    let page = state
        .control_plane
        .audit_log(&caller.0, filter, page_request)
        .await?;
    Ok(HttpResponse::Ok().json(AuditList {
        items: page.items.iter().map(AuditEventDto::from).collect(),
        next_cursor: page.next_cursor.map(|c| cursor::encode(LIST, c)),
    }))
}

fn audit_query(request: &HttpRequest) -> Result<(AuditFilter, PageRequest), ApiError> {
    let query = Query::parse(request, &["eventType", "since", "until", "limit", "cursor"])?;
    let event_type = query
        .get("eventType")
        .map(|raw| {
            AuditEventType::parse(raw).ok_or_else(|| {
                ApiError::invalid(
                    "eventType",
                    "must be an audit event type, like organization.suspended",
                )
            })
        })
        .transpose()?;
    let (since, until) = query.period()?;
    let filter = AuditFilter {
        event_type,
        since,
        until,
    };
    Ok((filter, query.page(LIST, 25, 200)?))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use domain::Timestamp;
    use time::macros::datetime;

    use super::*;

    fn parse(query: &str) -> Result<(AuditFilter, PageRequest), ApiError> {
        let request = TestRequest::get()
            .uri(&format!("/v1/audit-log?{query}"))
            .to_http_request();
        audit_query(&request)
    }

    fn field(query: &str) -> String {
        let error = parse(query)
            .err()
            .unwrap_or_else(|| panic!("{query} is refused"));
        error.details()["fields"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn nothing_is_everything_25_at_a_time() {
        let (filter, page) = parse("").unwrap();
        assert_eq!(filter, AuditFilter::default());
        assert_eq!(page.limit, 25);
        assert_eq!(page.after, None);
    }

    #[test]
    fn every_audit_type_is_a_filter_and_nothing_else_is() {
        for event_type in AuditEventType::ALL {
            let (filter, _) = parse(&format!("eventType={}", event_type.as_str())).unwrap();
            assert_eq!(filter.event_type, Some(event_type));
        }
        for bad in [
            "organization.exploded",
            "allocation",
            "ORGANIZATION.SUSPENDED",
            "",
        ] {
            assert_eq!(field(&format!("eventType={bad}")), "eventType", "{bad}");
        }
    }

    #[test]
    fn since_and_until_take_the_z_form_only_and_until_spans_its_millisecond() {
        let (filter, _) =
            parse("since=2026-06-03T18:14:02.187Z&until=2026-06-03T18:14:03.000Z").unwrap();
        let at = |t| Timestamp::from_offset_datetime(t);
        assert_eq!(
            filter.since,
            Some(at(datetime!(2026-06-03 18:14:02.187 UTC)))
        );
        assert_eq!(
            filter.until,
            Some(at(datetime!(2026-06-03 18:14:03.000999 UTC)))
        );
        assert_eq!(field("since=2026-06-03T18:14:02.187%2B00:00"), "since");
        assert_eq!(field("until=2026-06-03"), "until");
        assert_eq!(field("until=yesterday"), "until");
    }

    #[test]
    fn limit_is_1_to_200_and_cursors_belong_to_this_listing() {
        assert_eq!(parse("limit=200").unwrap().1.limit, 200);
        assert_eq!(parse("limit=1").unwrap().1.limit, 1);
        for bad in ["0", "201", "-1", "x"] {
            assert_eq!(field(&format!("limit={bad}")), "limit", "{bad}");
        }
        let position = domain::pagination::PageCursor {
            created_at: Timestamp::from_unix_micros(1_780_000_000_123_456)
                .unwrap_or_else(|| unreachable!("a valid instant")),
            id: uuid::Uuid::from_u128(7),
        };
        let ours = cursor::encode(LIST, position);
        assert_eq!(
            parse(&format!("cursor={ours}")).unwrap().1.after,
            Some(position)
        );
        let ledgers = cursor::encode("ledger", position);
        assert_eq!(field(&format!("cursor={ledgers}")), "cursor");
        assert_eq!(field("cursor=nonsense"), "cursor");
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        assert_eq!(field("event_type=organization.created"), "event_type");
        assert_eq!(field("limit=1&limit=2"), "limit");
    }
}
