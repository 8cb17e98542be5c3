//! Request bodies (API.md §1.1): at most 64 KiB (`413`), JSON, no unknown fields, every problem a
//! `422` that names the field. Read by hand rather than with actix's `Json` extractor, so that the
//! scope check runs first (§1.2 order) and every failure has the contract's envelope.

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("body", "could not be read completely"))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A required JSON body.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "is required: a JSON object"));
    }
    parse(bytes)
}

/// An optional JSON body: none at all (what `curl -X POST` sends) is `None`.
pub fn optional_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse(bytes).map(Some)
}

/// The body of a route that takes none: nothing, or an empty JSON object. Anything else is a
/// `422` like any bad body (API.md §1.1), rather than silently ignored.
pub fn none(bytes: &[u8]) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}
    optional_json::<Nothing>(bytes).map(drop)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from a JSON array; the contract's bodies are objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let (field, message) = describe(&path, &inner);
        ApiError::invalid(&field, &message)
    })?;
    deserializer.end().map_err(|_| {
        ApiError::invalid("body", "must be a single JSON object with nothing after it")
    })?;
    Ok(value)
}

/// Which field a serde error is about, and what to tell the caller.
fn describe(path: &str, error: &serde_json::Error) -> (String, String) {
    let text = error.to_string();
    // serde_path_to_error's path already ends with an unknown field's name, not a missing one's.
    let at = |name: &str| match path {
        "." => name.to_owned(),
        _ if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        _ => format!("{path}.{name}"),
    };
    let quoted = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = quoted("unknown field `") {
        return (at(&name), "is not a field of this request".to_owned());
    }
    if let Some(name) = quoted("missing field `") {
        return (at(&name), "is required".to_owned());
    }
    if error.is_syntax() || error.is_eof() {
        return ("body".to_owned(), "is not valid JSON".to_owned());
    }
    let field = if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    // Drop serde's " at line L column C" suffix: the field name already says where.
    let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
    (field, message)
}

/// For optional fields whose type is not nullable: absent → `None`, a value → `Some(value)`, and
/// `null` is a wrong type (`422`), as it would be for a required field. Use with
/// `#[serde(default, deserialize_with)]`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For PATCH fields where `null` and absent mean different things: absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(value))`. Use with `#[serde(default, deserialize_with)]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An integer field: JSON does not tell `5` from `5.0`, and JSON Schema calls both integers, so a
/// number with no fractional part is accepted as that integer (`5.5` is a wrong type). Use with
/// `#[serde(deserialize_with)]`.
pub fn integer<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    whole(serde_json::Number::deserialize(deserializer)?)
}

/// [`integer`] for PATCH fields where `null` and absent differ, as [`nullable`].
pub fn nullable_integer<'de, D>(deserializer: D) -> Result<Option<Option<i64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(whole)
        .transpose()
        .map(Some)
}

fn whole<E: serde::de::Error>(number: serde_json::Number) -> Result<i64, E> {
    // ±2^63 as f64: every whole f64 strictly between them converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f > -LIMIT && f < LIMIT => Ok(f as i64),
        _ => Err(E::custom(format!("must be an integer, not {number}"))),
    }
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[allow(dead_code)]
        name: String,
        #[serde(default, deserialize_with = "nullable")]
        billing_email: Option<Option<String>>,
    }

    fn field_of(body: &str) -> String {
        let error = parse::<Sample>(body.as_bytes()).unwrap_err();
        error.details()["fields"][0]["field"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn names_the_field_in_every_kind_of_error() {
        assert_eq!(field_of(r#"{"name": 5}"#), "name");
        assert_eq!(field_of(r#"{"name": "a", "status": "x"}"#), "status");
        assert_eq!(field_of(r#"{}"#), "name");
        assert_eq!(field_of(r#"not json"#), "body");
        assert_eq!(field_of(r#"[1]"#), "body");
        assert_eq!(field_of(r#"{"name": "a"} trailing"#), "body");
    }

    #[test]
    fn whole_numbers_are_integers() {
        #[derive(Debug, Deserialize)]
        struct Amounts {
            #[serde(deserialize_with = "integer")]
            credits: i64,
            #[serde(default, deserialize_with = "nullable_integer")]
            cap: Option<Option<i64>>,
        }
        let read = |body: &str| parse::<Amounts>(body.as_bytes());
        let amounts = read(r#"{"credits": 5.0, "cap": 1e3}"#).unwrap();
        assert_eq!((amounts.credits, amounts.cap), (5, Some(Some(1000))));
        let amounts = read(r#"{"credits": -7, "cap": null}"#).unwrap();
        assert_eq!((amounts.credits, amounts.cap), (-7, Some(None)));
        assert_eq!(read(r#"{"credits": 5}"#).unwrap().cap, None);
        for bad in [
            r#"{"credits": 5.5}"#,
            r#"{"credits": "5"}"#,
            r#"{"credits": 1e300}"#,
            r#"{"credits": 18446744073709551615}"#,
            r#"{"credits": 1, "cap": 0.5}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_and_absent_differ() {
        let absent: Sample = parse(br#"{"name": "a"}"#).unwrap();
        let null: Sample = parse(br#"{"name": "a", "billingEmail": null}"#).unwrap();
        assert_eq!(absent.billing_email, None);
        assert_eq!(null.billing_email, Some(None));
    }
}
