//! The constraints each handler enforces, written into the document's
//! request schemas and parameters: patterns of ids, serials and names,
//! lengths, ranges, enums. Each one mirrors a check in the handler or the
//! domain (see `keel_raft::domain::text` and the limits of the domain modules), so the document admits
//! exactly what is accepted.

use keel_raft::domain::cert::RevocationReason;
use keel_raft::domain::lease::{
    MAX_METADATA_ENTRIES, MAX_METADATA_LEN, MAX_NAME_LEN, MAX_TTL_MS, MIN_TTL_MS,
};
use keel_raft::domain::lease_batch::MAX_BATCH_ITEMS;
use keel_raft::domain::token::{self, Role};
use keel_raft::settings::Policy;
use serde_json::{Value, json};

use super::pattern;
use keel_raft::domain::text::{
    ACCOUNT_PATTERN, LEASE_ID_PATTERN, MAX_CSR_LEN, MAX_SANS, SERIAL_PATTERN,
};

/// Printable text: no C0/C1 control characters or DEL.
const PRINTABLE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A DNS name as keel issues it: labels of letters, digits and inner
/// hyphens.
const DNS_NAME: &str = "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
/// A PEM certificate signing request.
const CSR: &str = "^-----BEGIN CERTIFICATE REQUEST-----\\r?\\n(?:[A-Za-z0-9+/=]{1,76}\\r?\\n)+-----END CERTIFICATE REQUEST-----\\r?\\n?$";
/// The host of `host:port`: no spaces or control characters.
const HOST_PORT_HOST: &str = "^[^\\u0000-\\u0020\\u007f-\\u009f]+:";
/// Shortest certificate validity.
const PKI_MIN_TTL_MS: u64 = 60_000;

fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": PRINTABLE})
}

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

fn account() -> Value {
    json!({"type": "string", "pattern": ACCOUNT_PATTERN})
}

fn duration(min_ms: u64, max_ms: u64) -> Value {
    json!({
        "description": "integer seconds, or a string with a unit: ms, s, m, h, d",
        "oneOf": [
            {"type": "integer", "minimum": min_ms.div_ceil(1000), "maximum": max_ms / 1000},
            {"type": "string", "pattern": pattern::duration(min_ms, max_ms)}
        ]
    })
}

fn host_port() -> Value {
    let port = pattern::integer_range(1, 65_535).unwrap_or_default();
    json!({"type": "string", "maxLength": 1024, "pattern": format!("{HOST_PORT_HOST}{port}$")})
}

/// An RFC 3339 time, not before 1970 (nothing in keel predates it).
fn time() -> Value {
    json!({"type": "string", "format": "date-time", "pattern": "^(?:19[7-9][0-9]|[2-9][0-9]{3})-"})
}

fn u64_value() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

fn reasons() -> Value {
    let names: Vec<&str> = RevocationReason::NAMES.iter().map(|(n, _)| *n).collect();
    json!({"type": "string", "enum": names})
}

fn enum_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// Sets `properties.<field>` of component `name` (keeping its description).
fn set_property(doc: &mut Value, name: &str, field: &str, schema: Value) {
    let Some(props) = doc
        .pointer_mut(&format!("/components/schemas/{name}/properties"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let description = props.get(field).and_then(|p| p.get("description")).cloned();
    let mut schema = schema;
    if let (Some(d), Some(o)) = (description, schema.as_object_mut()) {
        o.entry("description").or_insert(d);
    }
    props.insert(field.to_string(), schema);
}

/// Sets the schema of parameter `param` of every operation on `path`.
fn set_param(doc: &mut Value, path: &str, param: &str, schema: &Value) {
    let Some(item) = doc
        .pointer_mut(&format!(
            "/paths/{}",
            path.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for op in item.values_mut() {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut() {
            if p.get("name").and_then(Value::as_str) == Some(param) {
                p["schema"] = schema.clone();
            }
        }
    }
}

/// Writes every constraint into `doc`. The certificate TTL bounds come
/// from `policy` (`--pki-max-ttl`), so the document states the bounds
/// this node enforces.
pub fn constrain(doc: &mut Value, policy: &Policy) {
    let lease_ttl = duration(MIN_TTL_MS, MAX_TTL_MS);
    let pki_ttl = duration(PKI_MIN_TTL_MS, policy.pki.max_ttl_ms.max(PKI_MIN_TTL_MS));
    let name = text(MAX_NAME_LEN);

    // Leases.
    set_property(doc, "GrantBody", "ttl", lease_ttl.clone());
    set_property(doc, "GrantBody", "max_ttl", nullable(lease_ttl.clone()));
    set_property(doc, "GrantBody", "name", nullable(name.clone()));
    set_property(doc, "GrantBody", "account", nullable(account()));
    set_property(
        doc,
        "GrantBody",
        "metadata",
        json!({
            "type": "object",
            "maxProperties": MAX_METADATA_ENTRIES,
            "propertyNames": text(MAX_METADATA_LEN),
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_LEN, "pattern": PRINTABLE}
        }),
    );
    set_property(
        doc,
        "LeaseRenewBody",
        "increment",
        nullable(lease_ttl.clone()),
    );
    set_property(doc, "RevokePrefixBody", "prefix", name.clone());

    // Lease batches: each list holds at most MAX_BATCH_ITEMS items.
    let batch_list =
        |items: Value| json!({"type": "array", "maxItems": MAX_BATCH_ITEMS, "items": items});
    let lease_id = json!({"type": "string", "pattern": LEASE_ID_PATTERN});
    set_property(
        doc,
        "BatchBody",
        "grant",
        batch_list(json!({"$ref": "#/components/schemas/GrantBody"})),
    );
    set_property(
        doc,
        "BatchBody",
        "renew",
        batch_list(json!({"$ref": "#/components/schemas/BatchRenewBody"})),
    );
    set_property(doc, "BatchBody", "revoke", batch_list(lease_id.clone()));
    set_property(doc, "BatchRenewBody", "id", lease_id);
    set_property(doc, "BatchRenewBody", "increment", nullable(lease_ttl));

    // Accounts.
    set_property(doc, "CreateBody", "name", account());
    for component in ["CreateBody", "PatchBody"] {
        set_property(doc, component, "expires_at", nullable(time()));
    }
    for (component, field) in [
        ("CreateLimits", "max_leases"),
        ("CreateLimits", "max_certificates"),
        ("PatchLimits", "max_leases"),
        ("PatchLimits", "max_certificates"),
    ] {
        set_property(doc, component, field, nullable(u64_value()));
    }

    // PKI.
    set_property(doc, "IssueBody", "common_name", text(64));
    set_property(
        doc,
        "IssueBody",
        "dns_names",
        json!({"type": "array", "maxItems": MAX_SANS,
               "items": {"type": "string", "maxLength": 253, "pattern": DNS_NAME}}),
    );
    set_property(
        doc,
        "IssueBody",
        "ip_addresses",
        json!({"type": "array", "maxItems": MAX_SANS,
               "items": {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}}),
    );
    let csr = json!({"type": "string", "maxLength": MAX_CSR_LEN, "pattern": CSR});
    for component in ["IssueBody", "SignBody"] {
        set_property(doc, component, "ttl", pki_ttl.clone());
        set_property(doc, component, "account", nullable(account()));
    }
    set_property(doc, "SignBody", "csr", csr.clone());
    set_property(doc, "CertRenewBody", "ttl", nullable(pki_ttl));
    set_property(doc, "CertRenewBody", "csr", nullable(csr));
    set_property(doc, "RevokeBody", "reason", nullable(reasons()));

    // Cluster.
    let node = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    set_property(doc, "AddMember", "id", node.clone());
    set_property(doc, "AddMember", "api_addr", host_port());
    set_property(doc, "AddMember", "peer_addr", host_port());
    set_property(doc, "TransferLeader", "to", nullable(node.clone()));

    // Path and query parameters.
    let lease_id = json!({"type": "string", "pattern": LEASE_ID_PATTERN});
    let serial = json!({"type": "string", "pattern": SERIAL_PATTERN});
    for path in ["/v1/leases/{id}", "/v1/leases/{id}/renew"] {
        set_param(doc, path, "id", &lease_id);
    }
    set_param(doc, "/v1/cluster/members/{id}", "id", &node);
    set_param(doc, "/v1/cluster/members/{id}/decommission", "id", &node);
    set_param(doc, "/v1/sys/events", "after", &node);
    for suffix in ["", "/disable", "/enable"] {
        set_param(
            doc,
            &format!("/v1/accounts/{{name}}{suffix}"),
            "name",
            &account(),
        );
    }
    for suffix in ["", "/renew", "/activate", "/revoke"] {
        set_param(
            doc,
            &format!("/v1/pki/certs/{{serial}}{suffix}"),
            "serial",
            &serial,
        );
    }
    let consistency = enum_of(&["linearizable", "leader", "local"]);
    let limit =
        json!({"type": "integer", "minimum": 1, "maximum": keel_raft::domain::list::MAX_LIMIT});
    for path in [
        "/v1/leases",
        "/v1/leases/{id}",
        "/v1/accounts",
        "/v1/accounts/{name}",
        "/v1/pki/certs",
        "/v1/pki/certs/{serial}",
        "/v1/pki/crl",
    ] {
        set_param(doc, path, "consistency", &consistency);
        set_param(doc, path, "limit", &limit);
    }
    // Tokens.
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    set_property(doc, "CreateTokenBody", "role", enum_of(&roles));
    set_property(doc, "CreateTokenBody", "account", nullable(account()));
    set_property(
        doc,
        "CreateTokenBody",
        "ttl",
        duration(MIN_TTL_MS, MAX_TTL_MS),
    );
    set_property(
        doc,
        "CreateTokenBody",
        "max_ttl",
        nullable(duration(MIN_TTL_MS, MAX_TTL_MS)),
    );
    set_property(
        doc,
        "CreateTokenBody",
        "name",
        nullable(text(token::MAX_NAME_LEN)),
    );
    set_property(
        doc,
        "RenewTokenBody",
        "increment",
        nullable(duration(MIN_TTL_MS, MAX_TTL_MS)),
    );
    // Join tokens: 1 s to 7 days.
    set_property(
        doc,
        "JoinTokenBody",
        "ttl",
        duration(1_000, crate::routes::sys::MAX_JOIN_TOKEN_TTL_MS),
    );
    // A tenant token names its account; no other role names one.
    if let Some(body) = doc.pointer_mut("/components/schemas/CreateTokenBody") {
        let others: Vec<&str> = roles.iter().copied().filter(|r| *r != "tenant").collect();
        body["oneOf"] = json!([
            {"properties": {"role": {"const": "tenant"}, "account": account()}, "required": ["account"]},
            {"properties": {"role": enum_of(&others), "account": {"type": "null"}}}
        ]);
    }
    set_param(doc, "/v1/auth/tokens/{accessor}", "accessor", &lease_id);
    set_param(doc, "/v1/auth/tokens", "cursor", &lease_id);
    set_param(doc, "/v1/auth/tokens", "limit", &limit);

    set_param(doc, "/v1/leases", "prefix", &name);
    set_param(doc, "/v1/leases", "account", &account());
    set_param(doc, "/v1/leases", "cursor", &lease_id);
    set_param(
        doc,
        "/v1/leases",
        "state",
        &enum_of(&["active", "suspended", "expired", "revoked"]),
    );
    set_param(
        doc,
        "/v1/accounts",
        "state",
        &enum_of(&["active", "expired", "disabled"]),
    );
    set_param(doc, "/v1/accounts", "cursor", &account());
    set_param(doc, "/v1/pki/certs", "account", &account());
    set_param(doc, "/v1/pki/certs", "cursor", &serial);
    set_param(
        doc,
        "/v1/pki/certs",
        "state",
        &enum_of(&["active", "suspended", "superseded", "revoked", "expired"]),
    );
    set_param(doc, "/v1/pki/crl", "format", &enum_of(&["pem", "der"]));
}
