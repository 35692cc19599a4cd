//! `keel cluster decommission ID [--force]`: sends the decommission and,
//! while the leader works through it (leadership hand-off, demotion,
//! waiting for the cluster to commit without the member, retiring it,
//! removal), prints what changes in the cluster as progress lines, on
//! stderr so `--json` output stays clean.

use super::http::ApiClient;
use super::member_watch::Watch;
use super::{ClientError, output};

/// Runs the decommission, printing progress until it answers.
pub async fn run(client: &ApiClient, json: bool, id: u64, force: bool) -> Result<(), ClientError> {
    let path = format!(
        "/v1/cluster/members/{id}/decommission{}",
        if force { "?force=true" } else { "" }
    );
    let watch = Watch::start(&format!(
        "decommissioning node {id}{}",
        if force { " (forced)" } else { "" }
    ));
    let report = watch.follow(client, id, client.post(&path, None)).await?;
    if json {
        return output::json(&report);
    }
    watch.line("done");
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
