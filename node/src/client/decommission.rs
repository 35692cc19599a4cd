//! `keel cluster decommission ID [--force]`: sends the decommission and,
//! while the leader works through it (leadership hand-off, demotion,
//! waiting for the cluster to commit without the member, retiring it,
//! removal), prints what changes in the cluster as progress lines, on
//! stderr so `--json` output stays clean.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::ApiClient;
use super::{ClientError, output};

/// How often the cluster is polled for progress.
const POLL: Duration = Duration::from_millis(500);

/// One progress line. Kept in one place so a richer progress display can
/// replace it.
pub fn progress(started: Instant, line: &str) {
    eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
}

/// What the progress lines describe: the leader and the member's role,
/// state and lag.
fn stage(view: &Value, id: u64) -> String {
    let leader = output::text(&view["leader"]);
    let member = view["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"].as_u64() == Some(id)));
    match member {
        Some(m) => format!(
            "leader {leader}; node {id} is a {} ({}), lag {}",
            output::text(&m["role"]),
            output::text(&m["state"]),
            output::text(&m["lag"])
        ),
        None => format!("leader {leader}; node {id} is no longer a member"),
    }
}

/// Runs the decommission, printing progress until it answers.
pub async fn run(client: &ApiClient, json: bool, id: u64, force: bool) -> Result<(), ClientError> {
    let started = Instant::now();
    let path = format!(
        "/v1/cluster/members/{id}/decommission{}",
        if force { "?force=true" } else { "" }
    );
    progress(
        started,
        &format!(
            "decommissioning node {id}{}",
            if force { " (forced)" } else { "" }
        ),
    );
    let call = client.post(&path, None);
    tokio::pin!(call);
    let mut ticker = tokio::time::interval(POLL);
    let mut last = String::new();
    let report = loop {
        tokio::select! {
            r = &mut call => break r?,
            _ = ticker.tick() => {
                // The member itself may be the node asked, and stop midway:
                // progress is best effort, the answer is what counts.
                if let Ok(view) = client.get("/v1/cluster").await {
                    let now = stage(&view, id);
                    if now != last {
                        progress(started, &now);
                        last = now;
                    }
                }
            }
        }
    };
    if json {
        return output::json(&report);
    }
    progress(started, "done");
    if report["leadership_transferred"].as_bool() == Some(true) {
        println!("node {id} led: leadership was handed off first");
    }
    if report["demoted"].as_bool() == Some(true) {
        println!("node {id} was demoted to learner; the cluster committed without it");
    }
    match report["retired"].as_bool() {
        Some(true) => {
            println!("node {id} marked its data directory decommissioned and is stopping")
        }
        _ => println!(
            "WARNING: node {id} could not be told to stop ({}): stop it and wipe its data directory",
            output::text(&report["retire_error"])
        ),
    }
    if let Some(why) = report["forced_past"].as_str() {
        println!("forced past: {why}");
    }
    println!(
        "node {id} removed; leader {}, voters {}",
        output::text(&report["leader"]),
        report["voters"]
            .as_array()
            .map(|v| v.iter().map(output::text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    Ok(())
}
