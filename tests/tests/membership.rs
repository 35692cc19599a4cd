//! Membership changes on a live cluster, with writes flowing throughout.
//!
//! - A fourth node started with `--join` is added as a learner, promoted
//!   to voter once caught up, and later removed; a background writer sees
//!   every write acknowledged throughout (a control plane must not stall
//!   while it grows or shrinks).
//! - A joining node that finds itself only a learner (its leader added
//!   it, then lost leadership before promoting it) asks the leader again
//!   and becomes a voter; it stayed a learner for good before, and the
//!   fault suite's cluster ran one voter short until a second lost disk
//!   left it without a quorum.
//! - Adding a node that does not exist (nothing listens at its addresses)
//!   does not break the cluster: it keeps serving, and the stray member
//!   can be removed again.
//! - Removing a healthy voter while another is down would leave the
//!   cluster without a reachable quorum: refused with 409, nothing
//!   changes. Unknown member ids answer 404.
//! - `transfer-leader` moves leadership to the named voter, also when the
//!   request reaches a node that does not lead.

use std::time::{Duration, Instant};

use keel_tests::workload::{grant_acked, lease_names};
use keel_tests::writer::Writer;
use keel_tests::{Api, Cluster, eventually, free_port};
use serde_json::{Value, json};

fn member_ids(view: &Value) -> Vec<(u64, String)> {
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["id"].as_u64().unwrap_or(0),
                        m["role"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn voters(ids: &[u64]) -> Vec<(u64, String)> {
    ids.iter().map(|id| (*id, "voter".to_string())).collect()
}

/// Waits until every listed node shows exactly `expected` as members.
async fn wait_members(cluster: &Cluster, nodes: &[u64], expected: Vec<(u64, String)>) {
    for id in nodes {
        let api = cluster.api(*id);
        let expected = expected.clone();
        eventually(
            Duration::from_secs(20),
            &format!("node {id} showing members {expected:?}"),
            || {
                let (api, expected) = (api.clone(), expected.clone());
                async move {
                    let seen = member_ids(&api.get("/v1/cluster").await?.body);
                    if seen == expected {
                        Ok(())
                    } else {
                        Err(format!("{seen:?}"))
                    }
                }
            },
        )
        .await;
    }
}

/// Index of the first log line containing every one of `parts`.
fn log_position(log: &str, parts: &[&str]) -> Option<usize> {
    log.lines()
        .position(|l| parts.iter().all(|p| l.contains(p)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_is_promoted_then_removed_while_writes_continue() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let writer = Writer::start(cluster.apis(), "grow");
    writer.wait_more(3, "before node 4 joins").await;

    // Node 4 joins through the leader: learner first, then voter.
    cluster.join_node(4).await;
    cluster.wait_ready(4, Duration::from_secs(60)).await;
    wait_members(&cluster, &[1, 2, 3, 4], voters(&[1, 2, 3, 4])).await;
    let log = cluster.node(leader).log();
    let added = log_position(&log, &["adding learner", "node=4"]);
    let promoted = log_position(&log, &["promoting learner to voter", "node=4"]);
    assert!(
        matches!((added, promoted), (Some(a), Some(p)) if a < p),
        "the leader's log should show node 4 added as a learner, then promoted: {added:?} {promoted:?}\n{}",
        cluster.node(leader).log_tail(40)
    );
    writer.wait_more(3, "with node 4 a voter").await;

    // The new voter holds the data written so far, and takes writes.
    let (id, _) = grant_acked(
        &[cluster.api(4)],
        "via-node-4",
        None,
        Duration::from_secs(20),
    )
    .await;
    // Everything the leader holds now must reach node 4 (the writer goes
    // on meanwhile, so the leader is read first).
    let on_leader = lease_names(&cluster.api(leader), "local").await.unwrap();
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    let on_four = lease_names(&cluster.api(4), "local").await.unwrap();
    assert!(on_four.contains_key(&id));
    assert!(
        on_leader.keys().all(|k| on_four.contains_key(k)),
        "node 4 lacks leases the leader has"
    );

    // Remove it again, through a follower (forwarded to the leader).
    let via = (1..=3).find(|id| *id != leader).unwrap();
    let r = cluster
        .api(via)
        .delete("/v1/cluster/members/4")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "remove node 4: {}", r.text);
    wait_members(&cluster, &[1, 2, 3], voters(&[1, 2, 3])).await;
    writer.wait_more(3, "after node 4 was removed").await;
    cluster.kill9(4);

    // Writes after the removal.
    let (after, _) = grant_acked(
        &cluster.apis(),
        "after-removal",
        None,
        Duration::from_secs(20),
    )
    .await;
    let report = writer.finish().await;
    println!(
        "writer: {} acknowledged, {} answered 503, longest gap between acknowledgements {:?}",
        report.acked.len(),
        report.unavailable,
        report.longest_gap
    );
    assert!(
        report.failures.is_empty(),
        "writes failed during membership changes: {:?}",
        report.failures
    );
    assert!(
        report.longest_gap < Duration::from_secs(5),
        "writes stalled for {:?} during membership changes",
        report.longest_gap
    );
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    for id in 1..=3 {
        let missing = report.missing_on(&cluster.api(id)).await;
        assert!(
            missing.is_empty(),
            "node {id} lost acknowledged leases: {missing:?}"
        );
        let held = lease_names(&cluster.api(id), "local").await.unwrap();
        assert!(held.contains_key(&after));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_left_a_learner_asks_again_and_becomes_a_voter() {
    // Peers authenticate by the cluster secret, so node 4 needs no
    // enrolment through the address it joins by.
    let mut cluster = Cluster::builder(3)
        .arg("--peer-auth")
        .arg("secret")
        .start()
        .await;
    let leader = cluster.leader().await;

    // Node 4 asks to join through an address where nothing answers, so
    // its own requests never arrive: it waits, pristine.
    let (api, peer) = (free_port(), free_port());
    let mut args = cluster.base_args(4, api, peer);
    args.extend(["--join".to_string(), format!("127.0.0.1:{}", free_port())]);
    let mut node = cluster.describe(4, api, peer, args);
    node.spawn();
    cluster.nodes.push(node);
    // The state a leader leaves when it adds a learner and loses
    // leadership before promoting it: node 4 a learner of the cluster.
    // (Until node 4's Raft runs, the leader finds no node to add there.)
    let body = json!({
        "id": 4,
        "api_addr": format!("127.0.0.1:{api}"),
        "peer_addr": format!("127.0.0.1:{peer}"),
        "voter": false,
    });
    let adder = cluster.api(leader);
    eventually(Duration::from_secs(30), "node 4 added as a learner", || {
        let (adder, body) = (adder.clone(), body.clone());
        async move {
            let r = adder.post("/v1/cluster/members", &body).await?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.text))
            }
        }
    })
    .await;

    // Node 4 follows the leader as a learner, asks it to be a voter, and
    // is promoted; only then is it ready.
    cluster.wait_ready(4, Duration::from_secs(60)).await;
    wait_members(&cluster, &[1, 2, 3, 4], voters(&[1, 2, 3, 4])).await;
    let log = cluster.node(leader).log();
    assert!(
        log_position(&log, &["promoting learner to voter", "node=4"]).is_some(),
        "the leader should have promoted node 4:\n{}",
        cluster.node(leader).log_tail(40)
    );
    grant_acked(
        &[cluster.api(4)],
        "via-node-4",
        None,
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_an_unreachable_node_does_not_break_the_cluster() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let writer = Writer::start(cluster.apis(), "stray");
    writer.wait_more(3, "before the add").await;

    // Nothing listens at these addresses. The add may block while the
    // leader waits for the new learner to catch up, so it runs apart, with
    // a client that gives up after a while.
    let (api_port, peer_port) = (free_port(), free_port());
    let body = json!({
        "id": 9,
        "api_addr": format!("127.0.0.1:{api_port}"),
        "peer_addr": format!("127.0.0.1:{peer_port}"),
    });
    let adder = Api::with_timeout(
        &cluster.node(leader).api_addr,
        Some(keel_tests::TOKEN),
        Duration::from_secs(8),
    );
    let add = tokio::spawn(async move { adder.post("/v1/cluster/members", &body).await });

    // While that is pending or after it gave up: every node stays ready,
    // and writes and linearizable reads are served.
    let started = Instant::now();
    for id in 1..=3 {
        let ready = cluster.api(id).get("/readyz").await.unwrap();
        assert_eq!(
            ready.status, 200,
            "node {id} /readyz while adding an unreachable node"
        );
    }
    let (lease, _) =
        grant_acked(&cluster.apis(), "during-add", None, Duration::from_secs(20)).await;
    for id in 1..=3 {
        cluster.api(id).get_ok(&format!("/v1/leases/{lease}")).await;
    }
    let outcome = add.await.unwrap();
    println!(
        "adding an unreachable node answered after {:?}: {outcome:?}",
        started.elapsed()
    );
    // The voters are untouched: a node that never acknowledged a single
    // entry must not be promoted. (A fourth voter that does not exist makes
    // the quorum 3 of 4: one more failure and the cluster stops.)
    let view = cluster.api(leader).get_ok("/v1/cluster").await;
    let members = member_ids(&view);
    let voter_ids: Vec<u64> = members
        .iter()
        .filter(|(_, role)| role == "voter")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        voter_ids,
        [1, 2, 3],
        "an unreachable node was made a voter: {members:?}; the add answered {outcome:?}"
    );
    if let Ok(r) = &outcome {
        assert_ne!(
            r.status, 200,
            "an unreachable node cannot have caught up: {}",
            r.text
        );
        assert!(
            r.status < 500 || r.status == 503,
            "adding an unreachable node: {} {}",
            r.status,
            r.text
        );
        assert!(r.is_error_body(), "{}", r.text);
    }

    // Whatever the add left behind (at most a learner that never caught
    // up) can be removed.
    if members.iter().any(|(id, _)| *id == 9) {
        assert!(members.contains(&(9, "learner".to_string())), "{members:?}");
        let r = cluster
            .api(leader)
            .delete("/v1/cluster/members/9")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "remove the stray learner: {}", r.text);
    }
    wait_members(&cluster, &[1, 2, 3], voters(&[1, 2, 3])).await;

    grant_acked(
        &cluster.apis(),
        "after-stray",
        None,
        Duration::from_secs(20),
    )
    .await;
    let report = writer.finish().await;
    println!(
        "writer: {} acknowledged, {} answered 503, longest gap {:?}",
        report.acked.len(),
        report.unavailable,
        report.longest_gap
    );
    assert!(
        report.failures.is_empty(),
        "writes failed: {:?}",
        report.failures
    );
    assert!(
        report.longest_gap < Duration::from_secs(5),
        "writes stalled for {:?}",
        report.longest_gap
    );
    for id in 1..=3 {
        let ready = cluster.api(id).get("/readyz").await.unwrap();
        assert_eq!(ready.status, 200, "node {id} /readyz at the end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_that_break_quorum_safety_or_name_nobody_are_refused() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (down, healthy) = (followers[0], followers[1]);

    // Unknown and malformed ids.
    let api = cluster.api(leader);
    let r = api.delete("/v1/cluster/members/42").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.is_error_body(), "{}", r.text);
    let r = cluster
        .api(healthy)
        .delete("/v1/cluster/members/42")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "through a follower: {}", r.text);
    let r = api
        .delete("/v1/cluster/members/not-a-number")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text);

    // One follower down: the leader sees it unreachable.
    cluster.kill9(down);
    eventually(
        Duration::from_secs(20),
        "the leader seeing the killed follower unreachable",
        || {
            let api = api.clone();
            async move {
                let v = api.get("/v1/cluster").await?.body;
                let state = v["members"]
                    .as_array()
                    .and_then(|ms| ms.iter().find(|m| m["id"].as_u64() == Some(down)))
                    .map(|m| m["state"].clone());
                if state == Some(json!("unreachable")) {
                    Ok(())
                } else {
                    Err(format!("{state:?}"))
                }
            }
        },
    )
    .await;

    // Removing the other (healthy) follower would leave {leader, down}:
    // one reachable voter of two, below quorum.
    let before = member_ids(&api.get_ok("/v1/cluster").await);
    for via in [leader, healthy] {
        let r = cluster
            .api(via)
            .delete(&format!("/v1/cluster/members/{healthy}"))
            .await
            .unwrap();
        assert_eq!(
            r.status, 409,
            "removing healthy node {healthy} via {via}: {}",
            r.text
        );
        assert!(r.is_error_body(), "{}", r.text);
    }
    // Removing the leader itself would leave {down, healthy}: also refused.
    let r = api
        .delete(&format!("/v1/cluster/members/{leader}"))
        .await
        .unwrap();
    assert_eq!(
        r.status, 409,
        "removing the leader with a voter down: {}",
        r.text
    );
    assert_eq!(
        member_ids(&api.get_ok("/v1/cluster").await),
        before,
        "membership changed"
    );
    assert_eq!(cluster.leader().await, leader);

    // The two survivors still serve writes, and the dead node can come back.
    grant_acked(
        &cluster.apis(),
        "still-writing",
        None,
        Duration::from_secs(20),
    )
    .await;
    cluster.restart(down);
    cluster.wait_ready(down, Duration::from_secs(60)).await;
    wait_members(&cluster, &[1, 2, 3], voters(&[1, 2, 3])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (target, via) = (others[0], others[1]);

    // Asked of a node that does not lead: forwarded.
    let r = cluster
        .api(via)
        .post("/v1/cluster/transfer-leader", &json!({"to": target}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "transfer to {target} via {via}: {}", r.text);
    assert_eq!(cluster.leader().await, target);
    let v = cluster.api(target).get_ok("/v1/cluster").await;
    assert_eq!(v["leader"].as_u64(), Some(target));

    // Unknown target.
    let r = cluster
        .api(target)
        .post("/v1/cluster/transfer-leader", &json!({"to": 42}))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.is_error_body(), "{}", r.text);
    assert_eq!(cluster.leader().await, target);

    // No target: to the most caught-up other voter. The new leader picks
    // among voters it has heard from recently, so first wait until it
    // shows none unreachable (right after an election it has not heard
    // from anyone yet).
    let fresh_view = cluster.api(target).get_ok("/v1/cluster").await;
    println!(
        "the new leader's view right after the transfer: {}",
        fresh_view["members"]
    );
    let leader_api = cluster.api(target);
    eventually(
        Duration::from_secs(10),
        "the new leader hearing from every voter",
        || {
            let api = leader_api.clone();
            async move {
                let v = api.get("/v1/cluster").await?.body;
                let unreachable: Vec<_> = v["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["state"] == "unreachable")
                    .map(|m| m["id"].clone())
                    .collect();
                if unreachable.is_empty() {
                    Ok(())
                } else {
                    Err(format!("unreachable: {unreachable:?}"))
                }
            }
        },
    )
    .await;
    let r = cluster
        .api(target)
        .send_raw("POST", "/v1/cluster/transfer-leader", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "transfer without a target: {}", r.text);
    let next = cluster.leader().await;
    assert_ne!(next, target);

    // The cluster serves writes under its new leader, through every node.
    let apis = cluster.apis();
    for (n, api) in apis.iter().enumerate() {
        grant_acked(
            std::slice::from_ref(api),
            &format!("after-transfer-{n}"),
            None,
            Duration::from_secs(20),
        )
        .await;
    }
}
