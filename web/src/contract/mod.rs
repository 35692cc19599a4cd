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
}
