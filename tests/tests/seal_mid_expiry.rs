//! Lesson 1, "join, don't just signal" (OpenBao #1290): the expiration
//! manager must be stopped *and awaited* before anything it uses goes away,
//! whether the leader is sealed or shut down.
//!
//! The leader is sealed (then unsealed), round after round, and in another
//! test shut down with SIGTERM (then restarted), while thousands of leases
//! fall due; each round strikes as a burst of them falls due, so a large
//! expiry batch is likely in flight. Afterwards: no panic in any log; no
//! manager logged anything after the supervisor said `managers stopped`
//! (until it next said `managers started`); no lease expired before its
//! deadline, resurrected or expired twice (the owning account's usage and
//! the managers' counters would show it); and the leaders that followed
//! finished the work: every lease expired. A last test holds the managers'
//! expiry counters to an exact count across seals.

use std::time::Duration;

use keel_tests::due::{DueWatch, grant_due_at, plan_lead};
use keel_tests::leases::{leader_other_than, metric, now_ms, same_everywhere, wait_until};
use keel_tests::manager_log::{check_manager_log, panics};
use keel_tests::{Api, Cluster};
use serde_json::json;

const EXPIRED: &str = "keel_lease_expirations_total";

/// Waits until every running node agrees on a leader other than `not`.
async fn leader_other(cluster: &mut Cluster, not: u64) -> u64 {
    let apis: Vec<Api> = cluster
        .running()
        .into_iter()
        .map(|id| cluster.api(id))
        .collect();
    leader_other_than(&apis, not).await
}

/// Leases for the lesson 1 rounds and what watches them.
struct Workload {
    watch: DueWatch,
    count: usize,
    /// When each round should strike: just as a burst of leases falls due,
    /// so the leader's manager is most likely mid-batch.
    bursts: Vec<u64>,
}

/// Grants `count` leases starting at least `lead_ms` from now (more if
/// granting is slow on this machine right now): half fall due evenly
/// over `spread_ms` (the manager is always busy), half in `rounds` bursts
/// spread over the same window (large batches in flight).
async fn due_leases(
    cluster: &Cluster,
    count: usize,
    lead_ms: u64,
    spread_ms: u64,
    rounds: u64,
) -> Workload {
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    let first = now_ms() + plan_lead(&apis, count, lead_ms).await;
    let bursts: Vec<u64> = (0..rounds)
        .map(|r| first + 200 + r * spread_ms / rounds)
        .collect();
    let plan_bursts = bursts.clone();
    let half = (count / 2).max(1) as u64;
    let plan = move |i: usize| {
        if i.is_multiple_of(2) {
            first + (i / 2) as u64 * spread_ms / half
        } else {
            plan_bursts[(i / 2) % plan_bursts.len()]
        }
    };
    let granted = grant_due_at(&apis, count, "due/", None, 1_000, plan).await;
    let watch = DueWatch::new("/v1/leases?prefix=due/", &granted);
    eprintln!(
        "granted {count}; first deadline in {} ms",
        watch.window().0.saturating_sub(now_ms())
    );
    Workload {
        watch,
        count,
        bursts,
    }
}

/// Samples through `apis` until no watched lease is left (bounded).
async fn drain(work: &mut Workload, apis: &[Api]) {
    let (_, last) = work.watch.window();
    let give_up = last + 30_000;
    for turn in 0.. {
        let left = work.watch.sample(&apis[turn % apis.len()]).await;
        if left == Some(0) && now_ms() > last {
            break;
        }
        assert!(
            now_ms() < give_up,
            "leases still listed 30 s after the last deadline: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    work.watch.assert_clean();
    assert_eq!(
        work.watch.gone_since.len(),
        work.count,
        "every lease expired"
    );
}

/// Grants the ten long-lived anchor leases of account `anchored`.
async fn grant_anchors(apis: &[Api]) {
    apis[0]
        .post_expect("/v1/accounts", &json!({"name": "anchored"}), 201)
        .await;
    for i in 0..10 {
        let body = json!({"ttl": "1h", "name": format!("anchor/{i}"), "account": "anchored"});
        apis[i % apis.len()]
            .post_expect("/v1/leases", &body, 201)
            .await;
    }
}

/// The anchors are intact and the account's usage counts exactly them: a
/// lease removed twice would have pushed it lower.
async fn assert_anchors(apis: &[Api]) {
    let account = same_everywhere(apis, "/v1/accounts/anchored").await;
    assert_eq!(account["usage"]["leases"], 10, "{account}");
    let anchors = same_everywhere(apis, "/v1/leases?prefix=anchor/").await;
    let anchors = anchors["items"].as_array().unwrap();
    assert_eq!(anchors.len(), 10);
    assert!(
        anchors.iter().all(|l| l["state"] == "active"),
        "{anchors:?}"
    );
}

/// `keel_lease_expirations_total` summed over the nodes.
async fn expirations(apis: &[Api]) -> f64 {
    let mut total = 0.0;
    for api in apis {
        total += metric(api, EXPIRED).await.unwrap();
    }
    total
}

/// Every node's log: no panic, no manager line after its stop.
fn check_logs(cluster: &Cluster) -> Vec<(u64, keel_tests::manager_log::ManagerLog)> {
    let mut reports = Vec::new();
    for node in &cluster.nodes {
        let log = node.log();
        let panicked = panics(&log);
        assert!(
            panicked.is_empty(),
            "node {} panicked:\n{}",
            node.id,
            panicked.join("\n")
        );
        match check_manager_log(&log) {
            Ok(r) => reports.push((node.id, r)),
            Err(e) => panic!("node {}: a manager outlived its stop:\n{e}", node.id),
        }
    }
    reports
}

/// The sealed node's events show lesson 1's order for its latest seal:
/// managers joined, then Raft stopped, then the keys dropped.
async fn assert_seal_order(api: &Api, round: u64) {
    let events = api.get_ok("/v1/sys/events").await;
    let messages: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    let last = |want: &str| messages.iter().rposition(|m| m == want);
    let steps = [
        "seal: managers stopped and joined",
        "seal: raft stopped",
        "seal: keys dropped from memory",
    ]
    .map(last);
    assert!(
        steps.iter().all(Option::is_some) && steps.windows(2).all(|w| w[0] < w[1]),
        "round {round}: seal steps out of order or missing: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_the_leader_mid_expiry_stops_its_managers_and_the_next_leader_finishes() {
    const ROUNDS: u64 = 10;
    let mut cluster = Cluster::start(3).await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    grant_anchors(&apis).await;
    let mut work = due_leases(&cluster, 3_000, 5_000, 12_000, ROUNDS).await;
    let (first, last) = work.watch.window();

    let started = first;
    let mut sealed_leaders = Vec::new();
    for round in 0..ROUNDS {
        // Each round strikes as a burst of leases falls due.
        wait_until(work.bursts[round as usize]).await;
        let leader = cluster.leader().await;
        let api = cluster.api(leader);
        let r = api.post("/v1/sys/seal", &json!({})).await.unwrap();
        assert_eq!(
            (r.status, &r.body["sealed"]),
            (200, &json!(true)),
            "round {round}: {:?}",
            r.body
        );
        let r = api.get("/v1/leases?prefix=due/&limit=1").await.unwrap();
        assert_eq!((r.status, r.code()), (503, "sealed"), "round {round}");
        assert_seal_order(&api, round).await;
        let next = leader_other(&mut cluster, leader).await;
        work.watch.sample(&cluster.api(next)).await;
        api.post_expect("/v1/sys/unseal", &json!({}), 200).await;
        cluster.wait_ready(leader, Duration::from_secs(30)).await;
        sealed_leaders.push(leader);
    }
    let rounds_done = now_ms();
    eprintln!(
        "{ROUNDS} seal rounds in {} ms; deadlines still falling due after them: {}",
        rounds_done - started,
        rounds_done < last
    );

    drain(&mut work, &apis).await;
    assert_anchors(&apis).await;
    // A double expiry would be counted twice; the exact count has its own
    // test below.
    let total = expirations(&apis).await;
    assert!(
        total <= work.count as f64,
        "{EXPIRED} summed over the nodes: {total}"
    );
    let reports = check_logs(&cluster);
    let stops: usize = reports.iter().map(|(_, r)| r.stops).sum();
    assert!(
        stops as u64 >= ROUNDS,
        "expected a supervisor stop per seal: {reports:?}"
    );
    eprintln!("sealed leaders {sealed_leaders:?}; manager logs {reports:?}");
}

/// The expiration managers' counters account for every expiry exactly
/// once, even when a seal interrupts the leader's manager mid-batch. No
/// process restarts here, so no count is lost with a process: the sum over
/// the nodes must be exactly the number of leases that fell due. (This is
/// also how an expiry applied twice would show.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_expiry_is_counted_once_when_seals_interrupt_the_manager() {
    const ROUNDS: u64 = 6;
    let mut cluster = Cluster::start(3).await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    let mut work = due_leases(&cluster, 1_500, 4_000, 8_000, ROUNDS).await;
    for round in 0..ROUNDS {
        wait_until(work.bursts[round as usize]).await;
        let leader = cluster.leader().await;
        cluster
            .api(leader)
            .post_expect("/v1/sys/seal", &json!({}), 200)
            .await;
        leader_other(&mut cluster, leader).await;
        cluster
            .api(leader)
            .post_expect("/v1/sys/unseal", &json!({}), 200)
            .await;
        cluster.wait_ready(leader, Duration::from_secs(30)).await;
    }
    drain(&mut work, &apis).await;
    let total = expirations(&apis).await;
    let dropped: usize = cluster
        .nodes
        .iter()
        .map(|n| {
            n.log()
                .lines()
                .filter(|l| l.contains("ProgressResponder.complete_tx.send: is_ok: false"))
                .count()
        })
        .sum();
    assert_eq!(
        total, work.count as f64,
        "{EXPIRED} summed over the nodes; openraft logged {dropped} write results sent to a proposer that had gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_mid_expiry_stops_its_managers_and_the_next_leader_finishes() {
    const ROUNDS: u64 = 8;
    let mut cluster = Cluster::builder(3)
        .arg("--shutdown-timeout")
        .arg("10s")
        .start()
        .await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    grant_anchors(&apis).await;
    let mut work = due_leases(&cluster, 2_000, 4_000, 14_000, ROUNDS).await;
    let (first, last) = work.watch.window();

    let started = first;
    for round in 0..ROUNDS {
        wait_until(work.bursts[round as usize]).await;
        let leader = cluster.leader().await;
        cluster.node_mut(leader).signal(libc::SIGTERM);
        let code = cluster
            .node_mut(leader)
            .wait_exit(Duration::from_secs(40))
            .await;
        assert_eq!(
            code,
            Some(0),
            "round {round}: node {leader} exit\n{}",
            cluster.node(leader).log_tail(30)
        );
        let next = leader_other(&mut cluster, leader).await;
        work.watch.sample(&cluster.api(next)).await;
        cluster.restart(leader);
        cluster.wait_ready(leader, Duration::from_secs(60)).await;
    }
    let rounds_done = now_ms();
    eprintln!(
        "{ROUNDS} SIGTERM rounds in {} ms; deadlines still falling due after them: {}",
        rounds_done - started,
        rounds_done < last
    );

    drain(&mut work, &apis).await;
    assert_anchors(&apis).await;
    // Processes restarted, so the counters only bound the total from above.
    let total = expirations(&apis).await;
    assert!(
        total <= work.count as f64,
        "{EXPIRED} summed over live processes: {total}"
    );
    let reports = check_logs(&cluster);
    let processes: usize = reports.iter().map(|(_, r)| r.processes).sum();
    assert_eq!(processes as u64, 3 + ROUNDS, "{reports:?}");
    eprintln!("manager logs {reports:?}");
}
