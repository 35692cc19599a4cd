//! Leases as the unit of work of the cluster tests: granting them (with
//! idempotency keys, so a retried write can never apply twice) and reading
//! the whole lease set back from a node at a chosen consistency.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Api, Reply};

/// Metadata that makes a lease weigh about `entries * value_len` bytes in
/// the replicated state (the domain allows 32 entries of up to 1024 bytes).
pub fn heavy_metadata(seed: &str, entries: usize, value_len: usize) -> Value {
    let map: serde_json::Map<String, Value> = (0..entries)
        .map(|i| {
            // Varied content, so compression cannot shrink the snapshot to
            // nothing and the test really moves megabytes.
            let unit = format!(
                "{seed}-{i}-{:x}-",
                (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            let value: String = unit.chars().cycle().take(value_len).collect();
            (format!("k{i:02}"), Value::String(value))
        })
        .collect();
    Value::Object(map)
}

/// One attempt to grant a lease named `name` through `api`, with the name
/// as idempotency key. `Ok(id)` on 201; `Err` with the reply otherwise.
pub async fn try_grant(
    api: &Api,
    name: &str,
    metadata: Option<&Value>,
) -> Result<String, Result<Reply, String>> {
    let mut body = json!({"ttl": "1h", "name": name});
    if let Some(m) = metadata {
        body["metadata"] = m.clone();
    }
    let reply = api
        .send_raw(
            "POST",
            "/v1/leases",
            Some(body.to_string().into_bytes()),
            &[("idempotency-key", name)],
        )
        .await
        .map_err(Err)?;
    match (reply.status, reply.body["id"].as_str()) {
        (201, Some(id)) => Ok(id.to_string()),
        _ => Err(Ok(reply)),
    }
}

/// Grants a lease named `name`, trying the nodes in turn until one
/// acknowledges it (201) or `deadline` passes. Only transient answers (no
/// answer, 503) are retried; the idempotency key makes a retry of a write
/// that did apply return the first lease instead of a second one. Returns
/// the lease id and how many attempts it took.
pub async fn grant_acked(
    apis: &[Api],
    name: &str,
    metadata: Option<&Value>,
    deadline: Duration,
) -> (String, u32) {
    let until = tokio::time::Instant::now() + deadline;
    let mut attempts = 0u32;
    loop {
        let api = &apis[attempts as usize % apis.len()];
        attempts += 1;
        match try_grant(api, name, metadata).await {
            Ok(id) => return (id, attempts),
            Err(Ok(r)) if r.status != 503 => {
                panic!("granting {name} via {}: {} {}", api.base, r.status, r.text)
            }
            Err(last) => {
                if tokio::time::Instant::now() >= until {
                    panic!("lease {name} not acknowledged within {deadline:?}; last: {last:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every lease a node holds, id to name, read page by page at
/// `consistency` (`local`, `leader` or `linearizable`).
pub async fn lease_names(api: &Api, consistency: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    // Bounded: a page holds 200 leases, and no test holds more than a few
    // thousand.
    for _ in 0..1_000 {
        let mut path = format!("/v1/leases?consistency={consistency}&limit=200");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path).await?;
        if r.status != 200 {
            return Err(format!("GET {path}: {} {}", r.status, r.text));
        }
        for item in r.body["items"].as_array().ok_or("no items")? {
            let id = item["id"].as_str().ok_or("lease without id")?.to_string();
            out.insert(id, item["name"].as_str().unwrap_or("").to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(out),
        }
    }
    Err("more pages than any test writes".into())
}

/// Grants `count` leases named `{prefix}-{n}` through `apis`, `parallel`
/// at a time, each retried (up to 60 s) until acknowledged; returns id to
/// name.
pub async fn write_leases(
    apis: &[crate::Api],
    prefix: &str,
    count: usize,
    parallel: usize,
    metadata: Option<&serde_json::Value>,
) -> std::collections::BTreeMap<String, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..parallel.max(1) {
        let apis = apis.to_vec();
        let prefix = prefix.to_string();
        let metadata = metadata.cloned();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for n in (worker..count).step_by(parallel.max(1)) {
                let name = format!("{prefix}-{n}");
                let api = &apis[n % apis.len()];
                let (id, _) = grant_acked(
                    std::slice::from_ref(api),
                    &name,
                    metadata.as_ref(),
                    std::time::Duration::from_secs(60),
                )
                .await;
                mine.push((id, name));
            }
            mine
        });
    }
    let mut acked = std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        acked.extend(done.expect("writer task"));
    }
    acked
}
