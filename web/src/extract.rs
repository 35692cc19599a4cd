//! Request extractors with keel's error contract: JSON bodies within the
//! size limit and without unknown fields, durations as seconds or unit
//! strings, the consistency and paging query parameters, and the
//! `Idempotency-Key` header. Every rejection is an [`ApiError`], so a bad
//! request always gets the JSON error body and changes nothing.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use keel_raft::Consistency;
use keel_raft::clock::parse_duration_ms;
use keel_raft::domain::list::{DEFAULT_LIMIT, MAX_LIMIT};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::error::ApiError;
use crate::shared::Shared;

/// Reads a request body within the configured limit. The body is parsed
/// as JSON whatever its declared Content-Type (as Vault and etcd do), so
/// `curl -d` works; a body that is not JSON gets a 400 saying why.
async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body: Body = req.into_body();
    if declared.is_some_and(|n| n > limit) {
        discard(&mut body, limit).await;
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::BadRequest(format!(
            "the request body did not arrive within {} s",
            BODY_READ_TIMEOUT.as_secs()
        )));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// Reads and drops what a client is still sending of a refused body (up to
/// a few times `limit`, and only while it keeps arriving), so it gets the
/// 413 instead of a broken pipe; a larger or stalled body is cut when the
/// connection closes.
async fn discard(body: &mut Body, limit: usize) {
    let cap = limit.saturating_mul(DRAIN_FACTOR);
    let mut seen = 0usize;
    while seen < cap {
        match tokio::time::timeout(DRAIN_IDLE, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// How long a client may take to send a request's body (a client that
/// trickles it cannot hold a handler, and what it reads, forever).
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How much of a refused body is drained, in multiples of the limit.
const DRAIN_FACTOR: usize = 8;
/// How long draining waits for the next piece of a refused body.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(200);

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is a JSON object; serde would also read a struct from an
    // array of its fields in order, which the contract does not allow.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A required JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<Arc<Shared>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state.limits.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("a JSON body is required".into()));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: empty means the type's default.
pub struct MaybeJson<T>(pub T);

impl<T: DeserializeOwned + Default + Send> FromRequest<Arc<Shared>> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state.limits.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(T::default()));
        }
        parse_json(&bytes).map(MaybeJson)
    }
}

/// Query parameters, parsed with keel's error contract: an unknown or
/// malformed parameter is a 400 with the JSON error body.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
    }
}

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyKey(pub Option<String>);

/// Longest accepted idempotency key.
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )));
        }
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

/// `?consistency=` of a read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// `linearizable` (default), `leader` or `local`.
    pub consistency: Option<String>,
}

impl ReadQuery {
    /// The parsed consistency.
    pub fn consistency(&self) -> Result<Consistency, ApiError> {
        consistency(self.consistency.as_deref())
    }
}

/// Parses a `?consistency=` value (default linearizable).
pub fn consistency(value: Option<&str>) -> Result<Consistency, ApiError> {
    match value {
        None => Ok(Consistency::Linearizable),
        Some(s) => Consistency::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "consistency must be linearizable, leader or local (got `{s}`)"
            ))
        }),
    }
}

/// Parses a `?state=` filter with the resource's state parser.
pub fn state_filter<T>(
    what: &str,
    value: Option<&str>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|s| {
            parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown {what} state `{s}`")))
        })
        .transpose()
}

/// Parses `?limit=` within bounds.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::BadRequest("limit must be at least 1".into())),
        Some(n) if n > MAX_LIMIT => Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        ))),
        Some(n) => Ok(n),
    }
}

/// A duration in a request body: integer seconds or a string such as
/// `"90s"`, `"5m"`, `"72h"`. Held in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationInput(pub u64);

impl<'de> Deserialize<'de> for DurationInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: integer seconds or a string like \"90s\", \"5m\", \"72h\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationInput, E> {
                v.checked_mul(1000)
                    .map(DurationInput)
                    .ok_or_else(|| E::custom("duration is out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationInput, E> {
                if v < 0 {
                    return Err(E::custom("duration must not be negative"));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationInput, E> {
                // JSON Schema counts 30.0 as an integer; so does keel.
                if v.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&v) {
                    return self.visit_u64(v as u64);
                }
                Err(E::custom("duration seconds must be a non-negative integer"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationInput, E> {
                // The API's grammar is strict (what `/openapi.json` states):
                // digits without leading zeros, then an optional unit.
                let digits = v.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || (digits > 1 && v.starts_with('0')) {
                    return Err(E::custom(format!(
                        "`{v}` is not a duration (digits without leading zeros, then ms, s, m, h or d)"
                    )));
                }
                if v.trim() != v {
                    return Err(E::custom("a duration must not contain spaces"));
                }
                parse_duration_ms(v).map(DurationInput).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A non-negative whole number in a request body. JSON Schema counts
/// `160.0` as the integer 160, so keel accepts it too; a fraction, a
/// negative number or a value beyond `u64` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("must not be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Whole, E> {
                // 2^64 itself is not representable as u64.
                if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                    Ok(Whole(v as u64))
                } else {
                    Err(E::custom("must be a non-negative integer"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes a nested struct from a JSON object only (serde would also
/// read it from an array of its fields in order).
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(de::Error::custom)
}

/// Deserializes a field that distinguishes "absent" (`None`) from `null`
/// (`Some(None)`); use with `#[serde(default)]`.
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        ttl: DurationInput,
    }

    #[test]
    fn durations_accept_seconds_and_unit_strings() {
        let ok = |s: &str| serde_json::from_str::<Body>(s).map(|b| b.ttl.0);
        assert_eq!(ok(r#"{"ttl": 30}"#).unwrap(), 30_000);
        assert_eq!(ok(r#"{"ttl": "90s"}"#).unwrap(), 90_000);
        assert_eq!(ok(r#"{"ttl": "72h"}"#).unwrap(), 259_200_000);
        assert!(ok(r#"{"ttl": -5}"#).is_err());
        assert!(ok(r#"{"ttl": 1.5}"#).is_err());
        assert_eq!(ok(r#"{"ttl": 30.0}"#).unwrap(), 30_000);
        assert!(ok(r#"{"ttl": "030s"}"#).is_err());
        assert!(ok(r#"{"ttl": " 30s"}"#).is_err());
        assert!(ok(r#"{"ttl": "30s "}"#).is_err());
        assert!(ok(r#"{"ttl": "soon"}"#).is_err());
        assert!(ok(r#"{"ttl": null}"#).is_err());
        assert!(ok(r#"{"ttl": 18446744073709551615}"#).is_err());
        let whole = |s: &str| serde_json::from_str::<Whole>(s).map(|w| w.0);
        assert_eq!(whole("160.0").unwrap(), 160);
        assert_eq!(whole("18446744073709551615").unwrap(), u64::MAX);
        assert!(whole("1.5").is_err() && whole("-1").is_err() && whole("1e20").is_err());
    }
}
