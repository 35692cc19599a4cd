//! The statuses every operation can answer besides its own: added to the
//! document from what the router and extractors do, so no route can forget
//! one. `/v1/*` routes answer 503 (`shutting_down`, `not_ready`, ...) with
//! `Retry-After`; routes behind a token answer 401; routes that read a body
//! answer 400 and 413; routes with path or query parameters answer 400;
//! routes naming an object in their path answer 404; domain writes take
//! an `Idempotency-Key`, so they answer 400 for a malformed key and 409
//! for a key used with another request. Routes behind a token answer
//! 429 with `Retry-After` when the token is over `--rate-limit`. Nothing
//! in keel answers 403 today (there are no scoped tokens), so no route
//! documents it.

use serde_json::{Map, Value, json};

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn unavailable() -> Value {
    let mut r = error(
        "the node cannot serve this now (not ready, sealed, no leader, shutting down, clock offset, outcome unknown)",
    );
    r["headers"] = json!({
        "Retry-After": {
            "description": "seconds to wait before retrying",
            "required": true,
            "schema": {"type": "integer", "minimum": 0}
        }
    });
    r
}

fn rate_limited() -> Value {
    let mut r = error("this token is over its request rate (`--rate-limit`)");
    r["headers"] = json!({
        "Retry-After": {
            "description": "whole seconds to wait before retrying",
            "required": true,
            "schema": {"type": "integer", "minimum": 1}
        }
    });
    r
}

fn add(responses: &mut Map<String, Value>, status: &str, value: Value) {
    responses.entry(status.to_string()).or_insert(value);
}

/// Adds the standard statuses to every operation of `doc`.
pub fn add_standard(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let idempotent_write = method != "get"
                && ["/v1/leases", "/v1/accounts", "/v1/pki", "/v1/auth/tokens"]
                    .iter()
                    .any(|p| path.starts_with(p));
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let secured = op.get("security").is_some_and(|s| {
                s.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                })
            });
            let has_body = op.contains_key("requestBody");
            let params: Vec<String> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("in").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            if has_body || !params.is_empty() || idempotent_write {
                add(responses, "400", error("malformed or out-of-bounds input"));
            }
            if secured {
                add(responses, "401", error("missing or invalid bearer token"));
                add(responses, "429", rate_limited());
            }
            if params.iter().any(|p| p == "path") {
                add(responses, "404", error("no such object"));
            }
            if idempotent_write {
                add(
                    responses,
                    "409",
                    error(
                        "the Idempotency-Key was used with another request, or the state forbids it",
                    ),
                );
            }
            if has_body {
                add(
                    responses,
                    "413",
                    error("the request body exceeds the limit"),
                );
            }
            if path.starts_with("/v1/") {
                add(responses, "503", unavailable());
            }
            for (status, response) in responses.iter_mut() {
                if status == "503"
                    && path.starts_with("/v1/")
                    && response.get("headers").is_none()
                    && let Some(r) = response.as_object_mut()
                {
                    r.insert("headers".into(), unavailable()["headers"].clone());
                }
            }
        }
    }
}
