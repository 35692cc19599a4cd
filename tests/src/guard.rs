//! Helpers of the bad-input tests: a node guarding a lease, an account and
//! a certificate, a snapshot of what must not change, and a checker that
//! collects every wrong answer instead of stopping at the first.

use std::time::Duration;

use serde_json::{Value, json};

use crate::workload::lease_names;
use crate::{Api, Cluster, eventually};

/// The body limit (the default, 1 MiB).
pub const LIMIT: usize = 1 << 20;

/// What must not change, as seen through the API.
pub async fn state(api: &Api) -> Value {
    let cluster = api.get_ok("/v1/cluster").await;
    let members: Vec<Value> = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!([m["id"], m["role"], m["api_addr"], m["peer_addr"]]))
        .collect();
    let accounts: Vec<Value> = api.get_ok("/v1/accounts?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!([a["name"], a["state"], a["expires_at"], a["limits"]]))
        .collect();
    let certs: Vec<Value> = api.get_ok("/v1/pki/certs?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["serial"], c["state"]]))
        .collect();
    let leases = lease_names(api, "linearizable").await.unwrap();
    let lease_details: Vec<Value> = {
        let mut out = Vec::new();
        for id in leases.keys() {
            let l = api.get_ok(&format!("/v1/leases/{id}")).await;
            out.push(json!([
                l["id"],
                l["name"],
                l["state"],
                l["expires_at"],
                l["renewals"],
                l["metadata"]
            ]));
        }
        out
    };
    json!({
        "leader": cluster["leader"],
        "members": members,
        "accounts": accounts,
        "certificates": certs,
        "leases": lease_details,
        "sealed": api.get_ok("/v1/sys/seal-status").await["sealed"],
    })
}

/// Sends a request and checks status, error body and code; a mismatch is
/// collected rather than failing at once, so one run reports every wrong
/// answer.
pub async fn check(
    wrong: &mut Vec<String>,
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    code: &str,
) {
    match api
        .send_raw(method, path, body.map(|b| b.as_bytes().to_vec()), &[])
        .await
    {
        Err(e) => wrong.push(format!("{method} {path} {body:?}: no answer: {e}")),
        Ok(r) if r.status != status || !r.is_error_body() || r.code() != code => {
            wrong.push(format!(
                "{method} {path} {body:?}: expected {status} {code}, got {} {:?} {}",
                r.status, r.content_type, r.text
            ))
        }
        Ok(_) => {}
    }
}

/// A cluster of one with a lease, an account and a certificate to guard.
pub async fn guarded_node() -> (Cluster, Api, String, String) {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let lease = api
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": "keep/me", "metadata": {"a": "b"}}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post_expect("/v1/accounts", &json!({"name": "acme"}), 201)
        .await;
    // The CA is installed by the leader shortly after start.
    let serial = eventually(Duration::from_secs(20), "a certificate issued", || {
        let api = api.clone();
        async move {
            let r = api
                .post(
                    "/v1/pki/issue",
                    &json!({"common_name": "svc.example.test", "ttl": "24h"}),
                )
                .await?;
            match r.body["serial"].as_str() {
                Some(s) if r.status == 201 => Ok(s.to_string()),
                _ => Err(format!("{} {}", r.status, r.text)),
            }
        }
    })
    .await;
    (cluster, api, lease, serial)
}
