//! The warnings section of `keel status`: what the addressed node reports
//! (`GET /v1/sys/warnings`: clock offsets, expiry debt, certificates about
//! to expire, unreachable members) plus the seal state of every member,
//! asked of each member directly (`/v1/sys/seal-status` needs no token).

use std::time::Duration;

use serde_json::{Value, json};

use super::{ApiClient, ClientError};

/// How long a member may take to say whether it is sealed.
const SEAL_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The warnings for `view` (the `/v1/cluster` answer of `client`'s node).
pub async fn collect(
    client: &ApiClient,
    view: &Value,
    scheme: &str,
    cacert: Option<&std::path::Path>,
) -> Result<Vec<Value>, ClientError> {
    let mut warnings = client.get("/v1/sys/warnings").await?["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let already_sealed = warnings.iter().any(|w| w["code"] == "sealed");
    let own = view["node_id"].as_u64();
    let members = view["members"].as_array().cloned().unwrap_or_default();
    let probes = members.iter().filter_map(|m| {
        let id = m["id"].as_u64()?;
        let addr = m["api_addr"].as_str()?.to_string();
        if already_sealed && Some(id) == own {
            return None;
        }
        Some(async move {
            let member = ApiClient::new(&format!("{scheme}://{addr}"), None, cacert).ok()?;
            let probe = member.raw_get("/v1/sys/seal-status");
            let (status, body) = tokio::time::timeout(SEAL_PROBE_TIMEOUT, probe)
                .await
                .ok()?
                .ok()?;
            let sealed = status == 200
                && serde_json::from_slice::<Value>(&body).ok()?["sealed"].as_bool() == Some(true);
            sealed.then(|| {
                json!({
                    "code": "sealed",
                    "message": format!(
                        "member {id} ({addr}) is sealed: it serves no domain request and runs no manager; `keel operator unseal` it"
                    ),
                })
            })
        })
    });
    warnings.extend(
        futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten(),
    );
    Ok(warnings)
}

/// Prints the warnings section.
pub fn print(warnings: &[Value]) {
    if warnings.is_empty() {
        println!("warnings none");
        return;
    }
    println!("warnings");
    for w in warnings {
        println!(
            "  ! {}: {}",
            w["code"].as_str().unwrap_or("warning"),
            w["message"].as_str().unwrap_or("")
        );
    }
}
