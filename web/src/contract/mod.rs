//! The exact API contract: the generated OpenAPI document completed with
//! what the annotations cannot say on their own: the statuses every route
//! can answer ([`responses`]) and the constraints every field and
//! parameter carries ([`schemas`], with exact patterns from [`pattern`]).

pub mod pattern;
pub mod responses;
pub mod schemas;

use keel_raft::settings::Policy;
use serde_json::Value;

/// Completes the generated document for a node running `policy`.
pub fn complete(doc: &mut Value, policy: &Policy) {
    schemas::constrain(doc, policy);
    responses::add_standard(doc);
    optional_bodies(doc);
}

/// Operations whose handler takes its body with `MaybeJson`: an empty
/// body is the same as `{}`, so the document says the body is optional.
const OPTIONAL_BODIES: [&str; 6] = [
    "/v1/leases/{id}/renew",
    "/v1/sys/unseal",
    "/v1/pki/certs/{serial}/renew",
    "/v1/pki/certs/{serial}/revoke",
    "/v1/cluster/transfer-leader",
    "/v1/auth/tokens/self/renew",
];

fn optional_bodies(doc: &mut Value) {
    for path in OPTIONAL_BODIES {
        let pointer = format!("/paths/{}/post/requestBody", path.replace('/', "~1"));
        if let Some(body) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            body.insert("required".into(), Value::Bool(false));
        }
    }
}
