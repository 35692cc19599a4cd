//! `keel cluster decommission` on real clusters, with writes flowing:
//!
//! - In a 3-node cluster, decommissioning a follower would leave 2 voters,
//!   which cannot tolerate a failure: refused with 409 saying why, nothing
//!   changes. With `--force` it goes ahead.
//! - In a 5-node cluster a follower, then the leader, are decommissioned
//!   (5 -> 4 -> 3): the leader hands leadership away first; each
//!   decommissioned node stops by itself (exit 0) and refuses to start
//!   again with its data directory; every write sent to the remaining
//!   nodes meanwhile is acknowledged and present afterwards.
//! - A member that died for good is decommissioned too: removed, and the
//!   answer says it could not be told to retire.

use std::time::Duration;

use keel_tests::leases::keel_cli;
use keel_tests::writer::{Writer, WriterReport};
use keel_tests::{Api, Cluster, TOKEN, eventually};
use serde_json::Value;

/// How long a decommissioned node may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

fn voter_ids(view: &Value) -> Vec<u64> {
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "voter")
                .filter_map(|m| m["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

fn member_ids(view: &Value) -> Vec<u64> {
    view["members"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// Waits until every listed node shows exactly `expected` as members, all
/// voters.
async fn wait_voters(cluster: &Cluster, nodes: &[u64], expected: &[u64]) {
    for id in nodes {
        let api = cluster.api(*id);
        eventually(
            Duration::from_secs(20),
            &format!("node {id} showing voters {expected:?} and nothing else"),
            || {
                let api = api.clone();
                async move {
                    let view = api.get("/v1/cluster?consistency=local").await?.body;
                    if voter_ids(&view) == expected && member_ids(&view) == expected {
                        Ok(())
                    } else {
                        Err(format!("members {}", view["members"]))
                    }
                }
            },
        )
        .await;
    }
}

/// The node stops by itself, exit 0, and a start with the same data
/// directory refuses, saying why, and leaves the directory as it was.
async fn stopped_for_good(cluster: &mut Cluster, id: u64) {
    let node = cluster.node_mut(id);
    let code = node.wait_exit(STOP_DEADLINE).await;
    assert_eq!(
        code,
        Some(0),
        "node {id} did not stop cleanly\n{}",
        node.log_tail(40)
    );
    assert!(
        node.data_dir.join("RETIRED").is_file(),
        "node {id}'s data directory is not marked"
    );
    let before = node.log().len();
    node.spawn();
    let code = node.wait_exit(Duration::from_secs(30)).await;
    let log = node.log();
    let again = &log[before..];
    assert_ne!(code, Some(0), "node {id} started again: {again}");
    assert!(
        again.contains("was decommissioned") && again.contains("can never rejoin"),
        "node {id} refused without saying why: {again}"
    );
    assert!(
        node.data_dir.join("db").is_dir(),
        "the refused start moved its data"
    );
    assert!(node.data_dir.join("RETIRED").is_file());
}

/// No write failed, and every acknowledged one is on every listed node.
async fn no_write_lost(cluster: &mut Cluster, report: &WriterReport, nodes: &[u64]) {
    assert!(
        report.failures.is_empty(),
        "writes failed during decommission: {:?}",
        report.failures
    );
    println!(
        "writer: {} acknowledged, {} answered 503 and were retried, longest gap {:?}",
        report.acked.len(),
        report.unavailable,
        report.longest_gap
    );
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    for id in nodes {
        let missing = report.missing_on(&cluster.api(*id)).await;
        assert!(
            missing.is_empty(),
            "node {id} lacks acknowledged leases: {missing:?}"
        );
    }
}

fn apis_of(cluster: &Cluster, ids: &[u64]) -> Vec<Api> {
    ids.iter().map(|id| cluster.api(*id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_refuse_to_lose_one_unless_forced() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let stays: Vec<u64> = (1..=3).filter(|id| *id != follower).collect();
    let writer = Writer::start(apis_of(&cluster, &stays), "three");
    writer.wait_more(3, "before the decommission").await;

    // Refused, through the API and the CLI, with the reason and the way out.
    let r = cluster
        .api(leader)
        .post(
            &format!("/v1/cluster/members/{follower}/decommission"),
            &Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not tolerate the failure") && message.contains("force"),
        "{message}"
    );
    let cli = keel_cli(
        &cluster.node(stays[1]).api_addr,
        TOKEN,
        &["cluster", "decommission", &follower.to_string()],
    )
    .await;
    assert_ne!(cli.code, Some(0), "{}", cli.stdout);
    assert!(cli.stderr.contains("could not tolerate"), "{}", cli.stderr);
    wait_voters(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    assert!(cluster.node_mut(follower).is_running());
    writer.wait_more(3, "after the refusals").await;

    // Forced: it goes, and shows its progress.
    let cli = keel_cli(
        &cluster.node(leader).api_addr,
        TOKEN,
        &["cluster", "decommission", &follower.to_string(), "--force"],
    )
    .await;
    assert_eq!(cli.code, Some(0), "{}\n{}", cli.stdout, cli.stderr);
    assert!(
        cli.stderr
            .contains(&format!("decommissioning node {follower} (forced)")),
        "{}",
        cli.stderr
    );
    assert!(cli.stdout.contains("forced past:"), "{}", cli.stdout);
    assert!(
        cli.stdout.contains("marked its data directory"),
        "{}",
        cli.stdout
    );
    stopped_for_good(&mut cluster, follower).await;
    wait_voters(&cluster, &stays, &stays).await;
    writer.wait_more(3, "with two voters").await;
    let report = writer.finish().await;
    no_write_lost(&mut cluster, &report, &stays).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_shrink_to_three_follower_then_leader() {
    let mut cluster = Cluster::start(5).await;
    let leader = cluster.leader().await;
    let follower = (1..=5).rev().find(|id| *id != leader).unwrap();
    let stays: Vec<u64> = (1..=5)
        .filter(|id| *id != follower && *id != leader)
        .collect();
    let writer = Writer::start(apis_of(&cluster, &stays), "five");
    writer.wait_more(3, "before the decommissions").await;

    // A follower: four voters tolerate a failure, so no force is needed.
    // Asked through the node being decommissioned itself.
    let cli = keel_cli(
        &cluster.node(follower).api_addr,
        TOKEN,
        &["cluster", "decommission", &follower.to_string(), "--json"],
    )
    .await;
    assert_eq!(cli.code, Some(0), "{}\n{}", cli.stdout, cli.stderr);
    let report = cli.json();
    assert_eq!(report["demoted"], true, "{report}");
    assert_eq!(report["retired"], true, "{report}");
    assert_eq!(report["leadership_transferred"], false, "{report}");
    assert_eq!(report["forced_past"], Value::Null, "{report}");
    stopped_for_good(&mut cluster, follower).await;
    let four: Vec<u64> = (1..=5).filter(|id| *id != follower).collect();
    wait_voters(&cluster, &four, &four).await;
    writer.wait_more(3, "with four voters").await;

    // The leader: three voters are left, which tolerate a failure. It
    // hands leadership away first.
    let r = cluster
        .api(stays[0])
        .post(
            &format!("/v1/cluster/members/{leader}/decommission"),
            &Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["leadership_transferred"], true, "{}", r.text);
    assert_eq!(r.body["retired"], true, "{}", r.text);
    let new_leader = r.body["leader"].as_u64().expect("a leader afterwards");
    assert_ne!(new_leader, leader);
    assert!(stays.contains(&new_leader), "{}", r.text);
    stopped_for_good(&mut cluster, leader).await;
    wait_voters(&cluster, &stays, &stays).await;
    assert_eq!(cluster.leader().await, new_leader);

    // The recent events say so: the node that ran it records the
    // decommission, every node the membership changes.
    let events = cluster.api(stays[0]).get_ok("/v1/sys/events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"decommission"), "{events}");
    assert!(kinds.contains(&"membership"), "{events}");

    writer.wait_more(3, "with three voters").await;
    let report = writer.finish().await;
    no_write_lost(&mut cluster, &report, &stays).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_decommissioned_and_the_answer_says_it_was_not_told() {
    let mut cluster = Cluster::start(5).await;
    let leader = cluster.leader().await;
    let dead = (1..=5).find(|id| *id != leader).unwrap();
    cluster.kill9(dead);
    let four: Vec<u64> = (1..=5).filter(|id| *id != dead).collect();
    let r = cluster
        .api(leader)
        .post(
            &format!("/v1/cluster/members/{dead}/decommission"),
            &Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["demoted"], true, "{}", r.text);
    assert_eq!(r.body["retired"], false, "{}", r.text);
    assert!(r.body["retire_error"].is_string(), "{}", r.text);
    wait_voters(&cluster, &four, &four).await;
    let writer = Writer::start(apis_of(&cluster, &four), "dead");
    writer.wait_more(3, "with four voters").await;
    let report = writer.finish().await;
    no_write_lost(&mut cluster, &report, &four).await;
}
