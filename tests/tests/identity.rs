//! A node's Raft identity always means the same log (safety guarantee 1).
//!
//! Real processes lose their data directories here: wiped while down (a
//! lost volume, a replaced disk) or replaced by an older copy (a restored
//! disk image). In every case no acknowledged write may be lost, the node
//! must come back as a new incarnation with no operator step, and the empty
//! (or old) directory must never vote or acknowledge with the identity of
//! the log it no longer holds.
//!
//! - `lost_volume_with_a_stale_peer_never_rolls_back`: the scenario that
//!   rolled the cluster back before incarnations existed.
//! - `wiped_leader_rejoins_as_a_new_incarnation`
//! - `wiped_follower_while_another_is_down`
//! - `old_copy_of_a_data_dir_is_retired`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use keel_tests::leases::{grant_many, list_all};
use keel_tests::{Cluster, eventually};
use serde_json::{Value, json};

/// The Raft id (incarnation) the cluster's leader lists for node `name`.
async fn raft_id_of(c: &mut Cluster, name: u64) -> u64 {
    let leader = c.leader().await;
    let view = c.api(leader).get_ok("/v1/cluster").await;
    member(&view, name)["raft_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("node {name} not in {view}"))
}

fn member(view: &Value, name: u64) -> Value {
    view["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"].as_u64() == Some(name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until every one of `names` is a voter, exactly once, with
/// `name` at a Raft id other than `old`, as the leader sees it. Returns how
/// long that took.
async fn wait_replaced(c: &mut Cluster, names: &[u64], name: u64, old: u64) -> Duration {
    let started = Instant::now();
    let apis: Vec<_> = names.iter().map(|n| c.api(*n)).collect();
    eventually(
        Duration::from_secs(60),
        &format!("node {name} replaced by a new incarnation"),
        || {
            let apis = apis.clone();
            async move {
                let mut last = String::from("no node answered");
                for api in &apis {
                    let Ok(r) = api.get("/v1/cluster").await else {
                        continue;
                    };
                    if r.status != 200 || r.body["leader"].is_null() {
                        continue;
                    }
                    let members = r.body["members"].as_array().cloned().unwrap_or_default();
                    let voters: Vec<u64> = members
                        .iter()
                        .filter(|m| m["role"] == "voter")
                        .filter_map(|m| m["id"].as_u64())
                        .collect();
                    let ids: BTreeSet<u64> = voters.iter().copied().collect();
                    let new = members
                        .iter()
                        .find(|m| m["id"].as_u64() == Some(name))
                        .and_then(|m| m["raft_id"].as_u64());
                    if members.len() == names.len()
                        && ids.len() == voters.len()
                        && ids == names.iter().copied().collect()
                        && new.is_some_and(|n| n != old)
                    {
                        return Ok(());
                    }
                    last = format!("members: {members:?}");
                }
                Err(last)
            }
        },
    )
    .await;
    started.elapsed()
}

/// Every lease named `prefix*`, read locally on node `id` once it caught up.
async fn names_on(c: &mut Cluster, id: u64, prefix: &str) -> BTreeSet<String> {
    let api = c.api(id);
    list_all(
        &api,
        &format!("/v1/leases?prefix={prefix}&limit=1000&consistency=local"),
    )
    .await
    .expect("list leases")
    .into_iter()
    .filter_map(|l| l["name"].as_str().map(str::to_string))
    .collect()
}

/// Checks every running node holds every acknowledged lease.
async fn assert_none_lost(c: &mut Cluster, acked: &BTreeSet<String>, prefix: &str, scenario: &str) {
    c.wait_caught_up(Duration::from_secs(60)).await;
    for id in c.running() {
        let seen = names_on(c, id, prefix).await;
        let lost: Vec<_> = acked.difference(&seen).collect();
        assert!(
            lost.is_empty(),
            "{scenario}: node {id} lost {} acknowledged leases, e.g. {:?}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        );
    }
}

async fn grant(c: &Cluster, via: &[u64], prefix: &str, n: usize) -> BTreeSet<String> {
    let apis: Vec<_> = via.iter().map(|id| c.api(*id)).collect();
    grant_many(
        &apis,
        n,
        8,
        |i| json!({"ttl": "1h", "name": format!("{prefix}{i}")}),
    )
    .await
    .into_iter()
    .map(|l| l["name"].as_str().expect("name").to_string())
    .collect()
}

/// A 3-node cluster holding `n` acknowledged leases named `prefix...`,
/// caught up everywhere, and one of its followers.
async fn cluster_with_leases(prefix: &str, n: usize) -> (Cluster, u64, BTreeSet<String>) {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let victim = [1, 2, 3]
        .into_iter()
        .find(|n| *n != leader)
        .expect("a follower");
    let acked = grant(&c, &[1, 2, 3], prefix, n).await;
    c.wait_caught_up(Duration::from_secs(30)).await;
    (c, victim, acked)
}

/// Kills node `id` and copies its data directory aside (a disk image).
fn take_image(c: &mut Cluster, id: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    c.kill9(id);
    let dir = c.node(id).data_dir.clone();
    let image = dir.with_extension("image");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&image)
        .status()
        .expect("cp");
    assert!(copied.success());
    (dir, image)
}

/// Kills node `id` and puts the image taken earlier in place of its data.
fn restore_image(c: &mut Cluster, id: u64, dir: &std::path::Path, image: &std::path::Path) {
    c.kill9(id);
    std::fs::remove_dir_all(dir).expect("remove data dir");
    std::fs::rename(image, dir).expect("restore image");
}

fn wipe(c: &Cluster, id: u64) {
    let dir = &c.node(id).data_dir;
    std::fs::remove_dir_all(dir).expect("wipe data dir");
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_volume_with_a_stale_peer_never_rolls_back() {
    let mut c = Cluster::start(3).await;
    let old = raft_id_of(&mut c, 2).await;
    // Node 3 falls behind; nodes 1 and 2 acknowledge 200 grants.
    c.kill9(3);
    let acked = grant(&c, &[1, 2], "acked/", 200).await;
    // Node 1 dies; node 2 comes back with an empty data dir; node 3 (stale)
    // comes back too. Neither may form a cluster without the acked leases.
    c.kill9(1);
    c.kill9(2);
    wipe(&c, 2);
    c.restart(2);
    c.restart(3);
    let watch_until = Instant::now() + Duration::from_secs(4);
    let mut reads = 0;
    while Instant::now() < watch_until {
        for id in [2, 3] {
            if let Ok(r) = c.api(id).get("/v1/leases?prefix=acked/&limit=1000").await
                && r.status == 200
            {
                reads += 1;
                let n = r.body["items"].as_array().map_or(0, Vec::len);
                assert_eq!(
                    n, 200,
                    "node {id} served a linearizable read missing acknowledged leases"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Node 1 returns: the cluster heals by itself, node 2 as a new
    // incarnation that replaced the old one.
    let healing = Instant::now();
    c.restart(1);
    wait_replaced(&mut c, &[1, 2, 3], 2, old).await;
    for id in [1, 2, 3] {
        c.wait_ready(id, Duration::from_secs(60)).await;
    }
    let healed = healing.elapsed();
    assert_none_lost(&mut c, &acked, "acked/", "lost volume").await;
    println!(
        "lost volume with a stale peer: acknowledged 200, lost 0; linearizable reads served while \
         node 1 was down: {reads}; healed {} ms after node 1 returned",
        healed.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wiped_leader_rejoins_as_a_new_incarnation() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let old = raft_id_of(&mut c, leader).await;
    let all: Vec<u64> = vec![1, 2, 3];
    let acked = grant(&c, &all, "lead/", 100).await;
    c.kill9(leader);
    wipe(&c, leader);
    let started = Instant::now();
    c.restart(leader);
    wait_replaced(&mut c, &all, leader, old).await;
    c.wait_ready(leader, Duration::from_secs(60)).await;
    let healed = started.elapsed();
    // The new incarnation serves writes like any member.
    let more = grant(&c, &[leader], "lead/after-", 10).await;
    let acked: BTreeSet<String> = acked.union(&more).cloned().collect();
    assert_none_lost(&mut c, &acked, "lead/", "wiped leader").await;
    println!(
        "wiped leader: acknowledged {}, lost 0; healed in {} ms with no operator step",
        acked.len(),
        healed.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wiped_follower_while_another_is_down() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|n| *n != leader).collect();
    let (down, wiped) = (followers[0], followers[1]);
    let old = raft_id_of(&mut c, wiped).await;
    c.kill9(down);
    let acked = grant(&c, &[leader, wiped], "fol/", 100).await;
    c.kill9(wiped);
    wipe(&c, wiped);
    c.restart(wiped);
    // The leader and an empty directory are not a quorum: nothing commits
    // and nothing is lost; when the other follower returns, it heals.
    let started = Instant::now();
    c.restart(down);
    wait_replaced(&mut c, &[1, 2, 3], wiped, old).await;
    for id in [1, 2, 3] {
        c.wait_ready(id, Duration::from_secs(60)).await;
    }
    let healed = started.elapsed();
    assert_none_lost(&mut c, &acked, "fol/", "wiped follower").await;
    println!(
        "wiped follower while another was down: acknowledged 100, lost 0; healed {} ms after the \
         other follower returned",
        healed.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn old_copy_of_a_data_dir_is_retired() {
    let (mut c, victim, mut acked) = cluster_with_leases("img/a-", 50).await;
    // Take a disk image of the follower, then let it acknowledge more.
    let (dir, image) = take_image(&mut c, victim);
    let old = raft_id_of(&mut c, victim).await;
    c.restart(victim);
    c.wait_ready(victim, Duration::from_secs(60)).await;
    acked.extend(grant(&c, &[1, 2, 3], "img/b-", 200).await);
    c.wait_caught_up(Duration::from_secs(30)).await;
    // Restore the old image: the node's log now ends below what it
    // acknowledged under that Raft id.
    restore_image(&mut c, victim, &dir, &image);
    let started = Instant::now();
    c.restart(victim);
    wait_replaced(&mut c, &[1, 2, 3], victim, old).await;
    c.wait_ready(victim, Duration::from_secs(60)).await;
    let healed = started.elapsed();
    assert!(
        c.node(victim)
            .log()
            .contains("retiring this data directory"),
        "the restored node did not say why it retired its data"
    );
    let retired = std::fs::read_dir(&dir)
        .expect("data dir")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("db.retired-"));
    assert!(retired, "the old database was not kept aside");
    assert_none_lost(&mut c, &acked, "img/", "old disk image").await;
    println!(
        "old data-dir image: acknowledged {}, lost 0; detected, retired and replaced in {} ms",
        acked.len(),
        healed.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_copy_of_a_replaced_incarnation_rejoins_as_a_new_one() {
    let (mut c, victim, mut acked) = cluster_with_leases("sup/a-", 30).await;
    // An image of incarnation A; then A's disk is lost and the node comes
    // back empty as incarnation B, which replaces A.
    let (dir, image) = take_image(&mut c, victim);
    let a = raft_id_of(&mut c, victim).await;
    wipe(&c, victim);
    c.restart(victim);
    wait_replaced(&mut c, &[1, 2, 3], victim, a).await;
    let b = raft_id_of(&mut c, victim).await;
    acked.extend(grant(&c, &[1, 2, 3], "sup/b-", 30).await);
    c.wait_caught_up(Duration::from_secs(30)).await;
    // Now A's image comes back: A is no member any more, and never can be.
    restore_image(&mut c, victim, &dir, &image);
    c.restart(victim);
    wait_replaced(&mut c, &[1, 2, 3], victim, b).await;
    c.wait_ready(victim, Duration::from_secs(60)).await;
    let now = raft_id_of(&mut c, victim).await;
    assert!(
        now != a && now != b,
        "node {victim} runs {now}; A {a}, B {b}"
    );
    assert!(
        c.node(victim).log().contains("replaced this incarnation"),
        "the restored node did not say why it retired its data"
    );
    assert_none_lost(&mut c, &acked, "sup/", "old copy of a replaced incarnation").await;
}
