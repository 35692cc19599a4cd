//! Lifecycle figures (issue 2), a program that prints numbers, not a test:
//!
//! - **ready**: from spawning three pristine `keel server` processes to all
//!   three answering `/readyz` 200;
//! - **failover**: from `kill -9` of the leader to the first write (a lease
//!   grant) acknowledged by a survivor; the election time (survivors
//!   agreeing on a new leader) is shown beside it.
//!
//! Each trial uses a fresh cluster on loopback. Targets on the 2-core
//! reference machine: ready under 2 s; failover median under 1.5 s.
//!
//! ```sh
//! cargo build --bin keel
//! cargo run -p keel-tests --bin bench_lifecycle -- [--trials 10] [--server-arg ARG]...
//! ```
//! `--server-arg` passes an argument to every `keel server` (repeat it for
//! a flag and its value, e.g. `--server-arg --election-timeout
//! --server-arg 250ms`). `KEEL_BIN` selects another `keel` binary, e.g. a
//! release build.

use std::time::{Duration, Instant};

use keel_tests::workload::try_grant;
use keel_tests::{Api, Cluster, keel_bin};

/// Bound on any one wait, so a broken build cannot hang the program.
const WAIT: Duration = Duration::from_secs(60);
/// Poll interval: the resolution of the figures.
const POLL: Duration = Duration::from_millis(5);

struct Trial {
    ready: Duration,
    election: Duration,
    failover: Duration,
}

/// Command-line options.
struct Options {
    trials: usize,
    server_args: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        trials: 10,
        server_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{a} takes a value"));
        match a.as_str() {
            "--trials" => o.trials = value.parse().expect("--trials takes a number"),
            "--server-arg" => o.server_args.push(value),
            other => panic!("unknown option {other} (use --trials N, --server-arg ARG)"),
        }
    }
    o
}

/// Polls until every node answers `/readyz` 200.
async fn all_ready(apis: &[Api]) {
    let until = Instant::now() + WAIT;
    let mut ready = vec![false; apis.len()];
    while !ready.iter().all(|r| *r) {
        assert!(
            Instant::now() < until,
            "the cluster was not ready within {WAIT:?}"
        );
        for (i, api) in apis.iter().enumerate() {
            if !ready[i] {
                ready[i] = api.get("/readyz").await.is_ok_and(|r| r.status == 200);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The leader the survivors agree on, if any.
async fn agreed_leader(apis: &[Api], not: u64) -> Option<u64> {
    let mut seen = Vec::new();
    for api in apis {
        let r = api.get("/v1/cluster").await.ok()?;
        seen.push(r.body["leader"].as_u64());
    }
    match seen[0] {
        Some(l) if l != not && seen.iter().all(|s| *s == Some(l)) => Some(l),
        _ => None,
    }
}

async fn trial(n: usize, server_args: &[String]) -> Trial {
    let started = Instant::now();
    let mut builder = Cluster::builder(3).no_wait();
    for a in server_args {
        builder = builder.arg(a);
    }
    let mut cluster = builder.start().await;
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    all_ready(&apis).await;
    let ready = started.elapsed();

    let leader = cluster.leader().await;
    let survivors: Vec<Api> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| cluster.api(id))
        .collect();
    cluster.kill9(leader);
    let killed = Instant::now();

    // The election is watched by a task of its own while the survivors
    // retry a grant (same idempotency key) until one is acknowledged.
    let watcher = {
        let survivors = survivors.clone();
        tokio::spawn(async move {
            while killed.elapsed() < WAIT {
                if agreed_leader(&survivors, leader).await.is_some() {
                    return Some(killed.elapsed());
                }
                tokio::time::sleep(POLL).await;
            }
            None
        })
    };
    let name = format!("failover-{n}");
    let mut attempt = 0usize;
    let failover = loop {
        assert!(
            killed.elapsed() < WAIT,
            "no write acknowledged within {WAIT:?} of the kill"
        );
        let writer = &survivors[attempt % survivors.len()];
        attempt += 1;
        match try_grant(writer, &name, None).await {
            Ok(_) => break killed.elapsed(),
            Err(Ok(r)) if r.status != 503 => panic!("grant refused: {} {}", r.status, r.text),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let election = watcher
        .await
        .expect("election watcher")
        .expect("survivors never agreed on a leader");
    Trial {
        ready,
        election,
        failover,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Options {
        trials,
        server_args,
    } = options();
    println!(
        "keel lifecycle figures: {trials} trials, 3 nodes on loopback, binary {}, server args {server_args:?}",
        keel_bin().display()
    );
    println!(
        "{:>5}  {:>10}  {:>10}  {:>10}",
        "trial", "ready", "election", "failover"
    );
    let mut all = Vec::new();
    for n in 1..=trials {
        let t = trial(n, &server_args).await;
        println!(
            "{n:>5}  {:>10}  {:>10}  {:>10}",
            ms(t.ready),
            ms(t.election),
            ms(t.failover)
        );
        all.push(t);
    }
    let ready: Vec<Duration> = all.iter().map(|t| t.ready).collect();
    let election: Vec<Duration> = all.iter().map(|t| t.election).collect();
    let failover: Vec<Duration> = all.iter().map(|t| t.failover).collect();
    println!();
    println!(
        "ready (start to all /readyz 200):        median {}, max {}  (target < 2000 ms)",
        ms(median(ready.clone())),
        ms(ready.iter().copied().max().unwrap_or_default())
    );
    println!(
        "election (kill -9 to agreed new leader): median {}, max {}",
        ms(median(election.clone())),
        ms(election.iter().copied().max().unwrap_or_default())
    );
    println!(
        "failover (kill -9 to first acked write): median {}, max {}  (target median < 1500 ms)",
        ms(median(failover.clone())),
        ms(failover.iter().copied().max().unwrap_or_default())
    );
}
