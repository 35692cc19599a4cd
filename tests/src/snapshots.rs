//! Helpers of the online snapshot tests: driving `keel operator snapshot`
//! and reading what each node holds.

use std::time::Duration;

use serde_json::Value;

use crate::api::Api;
use crate::leases::{CliRun, keel_cli_within, list_all};

/// Runs `keel operator snapshot <args>` against `api_addr` (within 120 s:
/// a restore replicates a whole state).
pub async fn snapshot_cli(api_addr: &str, token: &str, args: &[&str]) -> CliRun {
    let mut all = vec!["operator", "snapshot"];
    all.extend_from_slice(args);
    keel_cli_within(api_addr, token, &all, Duration::from_secs(120)).await
}

/// The names of the leases one node holds, as that node sees them (no
/// barrier: its own applied state), sorted.
pub async fn local_lease_names(api: &Api) -> Result<Vec<String>, String> {
    let items = list_all(api, "/v1/leases?consistency=local").await?;
    let mut names: Vec<String> = items
        .iter()
        .map(|l| l["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// The whole of one node's applied leases (clock-derived fields dropped),
/// for comparing replicas.
pub async fn local_leases(api: &Api) -> Result<Vec<Value>, String> {
    let items = list_all(api, "/v1/leases?consistency=local").await?;
    Ok(items.iter().map(crate::leases::without_clock).collect())
}

/// A copy of `file` at `to` cut to its first `len` bytes.
pub fn truncated_copy(file: &std::path::Path, to: &std::path::Path, len: usize) {
    let bytes = std::fs::read(file).expect("read snapshot");
    std::fs::write(to, &bytes[..len]).expect("write truncated copy");
}

/// A copy of `file` at `to` with one byte at `at` flipped.
pub fn corrupt_copy(file: &std::path::Path, to: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(file).expect("read snapshot");
    bytes[at] ^= 0x40;
    std::fs::write(to, &bytes).expect("write corrupt copy");
}
