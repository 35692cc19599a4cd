//! Lesson 5, "transport before consensus": a node serves its listeners
//! (phase 3), passes its readiness barrier (phase 4) and only then starts
//! Raft (phase 5). Anything that reaches it in between must get a clean
//! refusal, never a crash or a 500:
//! - peer routes (`/raft/*`, with the cluster secret) answer 503
//!   `raft_not_ready` until the Raft handle is installed, then something
//!   that is not a 5xx, and never go back;
//! - admin routes (`/v1/*`) answer 503 `not_ready` until then;
//! - `/livez` answers 200 from the moment the API listener serves.
//!
//! The nodes authenticate peers by the cluster secret (`--peer-auth
//! secret`) so the probes can authenticate from a node's first instant,
//! before any node certificate exists; what the routes answer after
//! authentication is the same under mutual TLS (`mtls.rs` covers that
//! authentication).
//!
//! No hook or mock widens the window. The tests probe real processes in a
//! tight loop from the instant they are spawned:
//! 1. three pristine nodes forming a cluster (the window is short: the
//!    barrier's self-check plus opening Raft on empty storage);
//! 2. a follower restarting with megabytes of committed log to re-apply:
//!    `Raft::new` replays it before the handle is installed, so the window
//!    lasts as long as the replay, and the real leader's AppendEntries hit
//!    it too.
//!
//! In both, the window must be observed (at least one 503
//! `raft_not_ready`), the process never exits, no node logs a panic, and
//! the cluster forms (or the follower catches up) once the node is ready.
//! A third test sends malformed peer bodies to a running node: an
//! authenticated peer's garbage is a 4xx, never a 500.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_tests::workload::{grant_acked, heavy_metadata, lease_names};
use keel_tests::{CLUSTER_SECRET, Cluster, TOKEN, http_client};
use tokio::time::Instant;

/// Peer routes probed: Raft's own RPCs and the identity call.
const PEER_ROUTES: [&str; 3] = ["/raft/append", "/raft/vote", "/raft/hello"];
/// A well-framed peer body (format version 1, MessagePack nil) that no RPC
/// accepts as its request: before Raft it is never read; after, the Raft
/// RPCs refuse it as undecodable (4xx) and `hello` ignores it.
const PEER_BODY: [u8; 2] = [1, 0xc0];

/// One answer (or the lack of one) to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Nothing listens yet (or any more).
    Refused,
    /// No answer for another reason (reset, timeout).
    NoAnswer(String),
    /// An HTTP answer: status and error code (empty if none).
    Answer(u16, String),
}

/// Everything probes saw on one node, in order, per route.
#[derive(Debug, Default)]
struct Probes {
    by_route: BTreeMap<String, Vec<Seen>>,
}

impl Probes {
    fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.by_route.values().flatten().filter(|s| f(s)).count()
    }
}

fn classify(r: Result<(u16, String), reqwest::Error>) -> Seen {
    match r {
        Ok((status, body)) => {
            let code = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            Seen::Answer(status, code)
        }
        Err(e) if e.is_connect() => Seen::Refused,
        Err(e) => Seen::NoAnswer(format!("{e:?}")),
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Result<(u16, String), reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Probes a node's peer and API listeners in a tight loop until `stop`.
fn probe(
    api_addr: String,
    peer_addr: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Probes> {
    tokio::spawn(async move {
        let http = http_client(Duration::from_secs(5));
        let mut probes = Probes::default();
        let until = Instant::now() + Duration::from_secs(180);
        while !stop.load(Ordering::Acquire) && Instant::now() < until {
            for route in PEER_ROUTES {
                let req = http
                    .post(format!("http://{peer_addr}{route}"))
                    .bearer_auth(CLUSTER_SECRET)
                    .header("content-type", "application/vnd.keel.peer")
                    .body(PEER_BODY.to_vec());
                let seen = classify(answer(req).await);
                probes
                    .by_route
                    .entry(route.to_string())
                    .or_default()
                    .push(seen);
            }
            for route in ["/livez", "/v1/cluster", "/v1/leases"] {
                let req = http
                    .get(format!("http://{api_addr}{route}"))
                    .bearer_auth(TOKEN);
                let seen = classify(answer(req).await);
                probes
                    .by_route
                    .entry(route.to_string())
                    .or_default()
                    .push(seen);
            }
        }
        probes
    })
}

/// Checks the rules of the module doc on what one node's probes saw.
/// Returns how many peer probes were answered 503 `raft_not_ready`.
fn check(node: u64, probes: &Probes) -> usize {
    for (route, seen) in &probes.by_route {
        let no_answer: Vec<_> = seen
            .iter()
            .filter(|s| matches!(s, Seen::NoAnswer(_)))
            .collect();
        assert!(
            no_answer.is_empty(),
            "node {node} {route}: probes without an answer: {no_answer:?}"
        );
        let answers: Vec<(u16, &str)> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Answer(status, code) => Some((*status, code.as_str())),
                _ => None,
            })
            .collect();
        assert!(!answers.is_empty(), "node {node} {route}: never answered");
        // Refused only before the listener serves: once answered, always
        // answered (the process does not restart or stop).
        let first_answer = seen
            .iter()
            .position(|s| matches!(s, Seen::Answer(..)))
            .unwrap();
        assert!(
            seen[first_answer..]
                .iter()
                .all(|s| matches!(s, Seen::Answer(..))),
            "node {node} {route}: refused after it had answered"
        );
        let not_ready_code = match route.as_str() {
            "/livez" => {
                assert!(
                    answers.iter().all(|(s, _)| *s == 200),
                    "node {node} /livez must answer 200 whenever the listener serves: {answers:?}"
                );
                continue;
            }
            r if r.starts_with("/raft/") => "raft_not_ready",
            _ => "not_ready",
        };
        // 503 `<not ready>` first, then never again; nothing else is a 5xx
        // except, on admin routes after Raft started, 503 no_leader, and
        // 503 clock_offset until the node has measured its peers' clocks.
        let ready_from = answers
            .iter()
            .position(|(s, c)| !(*s == 503 && *c == not_ready_code))
            .unwrap_or(answers.len());
        for (status, code) in &answers[ready_from..] {
            assert!(
                !(*status == 503 && *code == not_ready_code),
                "node {node} {route}: {not_ready_code} again after Raft answered: {answers:?}"
            );
            let allowed_503 = route.starts_with("/v1/")
                && *status == 503
                && (*code == "no_leader" || *code == "clock_offset");
            assert!(
                *status < 500 || allowed_503,
                "node {node} {route}: answered {status} {code:?}"
            );
        }
    }
    probes.count(|s| matches!(s, Seen::Answer(503, c) if c == "raft_not_ready"))
}

/// Fails if any node's log mentions a panic.
fn assert_no_panic(cluster: &Cluster) {
    for node in &cluster.nodes {
        let log = node.log();
        assert!(
            !log.contains("panicked"),
            "node {} panicked:\n{}",
            node.id,
            node.log_tail(60)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_before_the_barrier_are_refused_cleanly_and_the_cluster_forms() {
    let mut cluster = Cluster::builder(3)
        .arg("--peer-auth")
        .arg("secret")
        .no_spawn()
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut probing = Vec::new();
    for id in 1..=3 {
        let node = cluster.node(id);
        probing.push((
            id,
            probe(node.api_addr.clone(), node.peer_addr.clone(), stop.clone()),
        ));
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    for id in 1..=3 {
        cluster.wait_ready(id, Duration::from_secs(60)).await;
    }
    stop.store(true, Ordering::Release);
    let leader = cluster.leader().await;
    assert!((1..=3).contains(&leader));

    let mut windows = Vec::new();
    let mut total_not_ready = 0;
    for (id, task) in probing {
        let probes = task.await.unwrap();
        let not_ready = check(id, &probes);
        total_not_ready += not_ready;
        let admin_not_ready =
            probes.count(|s| matches!(s, Seen::Answer(503, c) if c == "not_ready"));
        windows.push(format!(
            "node {id}: {} probes, {not_ready} peer 503 raft_not_ready, {admin_not_ready} admin 503 not_ready",
            probes.count(|_| true)
        ));
    }
    println!("formation: {}", windows.join("; "));
    assert!(
        total_not_ready > 0,
        "no peer probe landed between a node's listeners serving and its Raft starting"
    );
    assert_eq!(cluster.running(), vec![1, 2, 3], "a node exited");
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_follower_refuses_raft_until_its_log_is_replayed() {
    let mut cluster = Cluster::builder(3)
        .arg("--peer-auth")
        .arg("secret")
        .start()
        .await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Several MB of committed log (the default snapshot threshold keeps it
    // all in the log), which the follower replays when Raft starts.
    let metadata = heavy_metadata("replay", 32, 1000);
    let apis = cluster.apis();
    let mut acked = BTreeMap::new();
    for n in 0..200 {
        let name = format!("replay-{n}");
        let (id, _) = grant_acked(
            &apis[n % 3..][..1],
            &name,
            Some(&metadata),
            Duration::from_secs(30),
        )
        .await;
        acked.insert(id, name);
    }
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    cluster.kill9(follower);

    // Probe from before the restart; writes continue meanwhile, so the
    // leader keeps sending the follower AppendEntries while it starts.
    let stop = Arc::new(AtomicBool::new(false));
    let node = cluster.node(follower);
    let probing = probe(node.api_addr.clone(), node.peer_addr.clone(), stop.clone());
    let others: Vec<_> = (1..=3)
        .filter(|id| *id != follower)
        .map(|id| cluster.api(id))
        .collect();
    cluster.restart(follower);
    let restarted = Instant::now();
    let mut n = 200;
    while cluster.api(follower).get("/readyz").await.map(|r| r.status) != Ok(200) {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the follower never became ready"
        );
        assert!(
            cluster.node_mut(follower).is_running(),
            "the follower exited:\n{}",
            cluster.node(follower).log_tail(40)
        );
        let name = format!("replay-{n}");
        let (id, _) = grant_acked(&others, &name, None, Duration::from_secs(30)).await;
        acked.insert(id, name);
        n += 1;
    }
    stop.store(true, Ordering::Release);
    let probes = probing.await.unwrap();
    let not_ready = check(follower, &probes);
    let log = cluster.node(follower).log();
    let phase_time = |phase: &str| {
        log.lines()
            .rev()
            .find(|l| l.contains(phase))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    println!(
        "restart: {} probes, {not_ready} peer 503 raft_not_ready, {} admin 503 not_ready; barrier passed at {}, raft started at {}",
        probes.count(|_| true),
        probes.count(|s| matches!(s, Seen::Answer(503, c) if c == "not_ready")),
        phase_time("readiness barrier passed"),
        phase_time("raft started"),
    );
    assert!(
        not_ready > 0,
        "no peer probe landed between the listeners serving and Raft starting; \
         the window is too short to observe without a product hook"
    );

    // The follower caught up with everything, including what was written
    // while it refused Raft traffic.
    cluster.wait_caught_up(Duration::from_secs(60)).await;
    let held = lease_names(&cluster.api(follower), "local").await.unwrap();
    assert_eq!(held, acked, "the restarted follower's leases");
    assert_eq!(cluster.running(), vec![1, 2, 3]);
    assert_no_panic(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_peer_messages_are_refused_without_a_500() {
    let cluster = Cluster::builder(1)
        .arg("--peer-auth")
        .arg("secret")
        .start()
        .await;
    let peer = cluster.peer_api(1);
    let framed_wrong = [
        vec![],
        vec![9, 0xc0],
        vec![1, 0xff, 0x00],
        b"{\"json\": true}".to_vec(),
    ];
    let mut wrong = Vec::new();
    for route in PEER_ROUTES
        .iter()
        .filter(|r| **r != "/raft/hello")
        .chain(&["/raft/snapshot"])
    {
        for body in &framed_wrong {
            let r = peer
                .send_raw(
                    "POST",
                    route,
                    Some(body.clone()),
                    &[("content-type", "application/vnd.keel.peer")],
                )
                .await
                .unwrap();
            if !(400..500).contains(&r.status) {
                wrong.push(format!(
                    "{route} with body {body:?}: {} {}",
                    r.status, r.text
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "malformed peer messages not refused with a 4xx:\n{}",
        wrong.join("\n")
    );
    // Without the cluster secret: 401, whatever the body.
    let r = cluster
        .peer_api(1)
        .with_token("not-the-secret")
        .send_raw("POST", "/raft/append", Some(PEER_BODY.to_vec()), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_no_panic(&cluster);
}
