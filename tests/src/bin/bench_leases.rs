//! Lease benchmark (a program that prints figures, not a test).
//!
//! On a 3-node loopback cluster, with 64 concurrent HTTP/1.1 clients sending
//! JSON to the leader, it measures throughput and p50/p99 latency of lease
//! grant, renew and linearizable lookup; then how long after a shared
//! deadline 100,000 leases are all revoked; then how long a node holding
//! 1,000,000 leases takes to restart and become ready, and its resident
//! memory per lease. With `--batch N` it also grants and renews the same
//! leases through `POST /v1/leases/batch`, N items a request, and prints
//! leases per second.
//!
//! ```sh
//! cargo build --release --bin keel
//! cargo run --release -p keel-tests --bin bench_leases -- [--ops 50000] [--batch 100] [--deadline-leases 100000] [--million 1000000]
//! ```
//! Set any count to 0 to skip that part.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_tests::{Api, Cluster, eventually};
use serde_json::{Value, json};

const CLIENTS: usize = 64;

struct Args {
    ops: usize,
    batch: usize,
    deadline_leases: usize,
    million: usize,
}

fn args() -> Args {
    let mut a = Args {
        ops: 50_000,
        batch: 100,
        deadline_leases: 100_000,
        million: 1_000_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let n = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--ops" => a.ops = n,
            "--batch" => a.batch = n.min(1000),
            "--deadline-leases" => a.deadline_leases = n,
            "--million" => a.million = n,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Latencies of one load phase.
struct Stats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<22} {:>8} ok {:>5} err  {:>9.0} ops/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.ok,
            self.errors,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.pct(0.50),
            self.pct(0.99)
        );
    }
}

/// Runs `total` operations from `CLIENTS` concurrent clients.
async fn load<F, Fut>(total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (lat, err) = t.await.expect("client task");
        latencies.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Stats {
        ok: latencies.len(),
        errors,
        elapsed,
        latencies,
    }
}

async fn grant(api: &Api, body: Value) -> Result<String, String> {
    let r = api.post("/v1/leases", &body).await?;
    if r.status != 201 {
        return Err(format!("grant: {} {}", r.status, r.body));
    }
    Ok(r.body["id"].as_str().unwrap_or_default().to_string())
}

/// `n` linearizable lookups of the leases in `ids`, round robin.
async fn lookups(api: Api, ids: Arc<Vec<String>>, n: usize) -> Stats {
    load(n, move |i| {
        let (api, ids) = (api.clone(), ids.clone());
        async move {
            let r = api
                .get(&format!("/v1/leases/{}", ids[i % ids.len()]))
                .await?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("lookup: {} {}", r.status, r.body))
            }
        }
    })
    .await
}

/// Grants `n` leases named `prefix/i`, each with the TTL `ttl()` gives
/// when it is sent, returning their ids.
async fn grant_many(
    api: &Api,
    n: usize,
    prefix: &str,
    ttl: impl Fn() -> String + Send + Sync + 'static,
) -> (Stats, Vec<String>) {
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (api2, ids2, prefix, ttl) = (api.clone(), ids.clone(), prefix.to_string(), Arc::new(ttl));
    let stats = load(n, move |i| {
        let (api, ids, prefix, ttl) = (api2.clone(), ids2.clone(), prefix.clone(), ttl.clone());
        async move {
            let id = grant(&api, json!({"ttl": ttl(), "name": format!("{prefix}/{i}")})).await?;
            ids.lock().unwrap()[i] = id;
            Ok(())
        }
    })
    .await;
    let ids = Arc::try_unwrap(ids)
        .expect("no other owner")
        .into_inner()
        .unwrap();
    (stats, ids)
}

/// Sends one batch and checks every item took effect.
async fn send_batch(api: &Api, body: Value, list: &str) -> Result<(), String> {
    let r = api.post("/v1/leases/batch", &body).await?;
    if r.status != 200 || r.body["failed"] != 0 {
        return Err(format!("batch: {} {}", r.status, r.body));
    }
    let n = r.body[list].as_array().map_or(0, Vec::len);
    same_count(n, body[list].as_array().map_or(0, Vec::len))
}

fn same_count(got: usize, sent: usize) -> Result<(), String> {
    if got == sent {
        Ok(())
    } else {
        Err(format!("{got} results for {sent} items"))
    }
}

/// Grants `ids.len()` leases, then renews `ids`, through batches of `size`
/// items; prints requests and leases per second.
async fn batches(api: &Api, ids: &Arc<Vec<String>>, size: usize) {
    let requests = ids.len().div_ceil(size);
    let api2 = api.clone();
    let stats = load(requests, move |_| {
        let api = api2.clone();
        async move {
            let grants: Vec<Value> = (0..size)
                .map(|_| json!({"ttl": "1h", "name": "batch/x"}))
                .collect();
            send_batch(&api, json!({"grant": grants}), "grant").await
        }
    })
    .await;
    stats.print(&format!("grant, batches of {size}"));
    println!(
        "{:<22} {:>9.0} leases/s",
        "",
        (stats.ok * size) as f64 / stats.elapsed.as_secs_f64()
    );
    let (api2, ids2) = (api.clone(), ids.clone());
    let stats = load(requests, move |i| {
        let (api, ids) = (api2.clone(), ids2.clone());
        async move {
            let renew: Vec<Value> = ids[i * size..((i + 1) * size).min(ids.len())]
                .iter()
                .map(|id| json!({"id": id}))
                .collect();
            send_batch(&api, json!({"renew": renew}), "renew").await
        }
    })
    .await;
    stats.print(&format!("renew, batches of {size}"));
    println!(
        "{:<22} {:>9.0} leases/s",
        "",
        (stats.ok * size) as f64 / stats.elapsed.as_secs_f64()
    );
    let r = api
        .post("/v1/leases/revoke-prefix", &json!({"prefix": "batch/"}))
        .await
        .expect("revoke");
    println!("revoked {} batch-granted leases", r.body["revoked"]);
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn lease_count(api: &Api) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("metrics");
    let body = text.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("keel_leases{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Mean and slowest time of `n` sequential GETs of `path` (no token
/// needed for `/metrics`; `api`'s token otherwise).
async fn timed_gets(api: &Api, path: &str, n: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = api.get(path).await.expect("an answer");
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = times.iter().sum::<f64>() / n as f64;
    let max = times.iter().copied().fold(0.0, f64::max);
    (mean, max)
}

/// Prints the time of a `/metrics` scrape and of a prefix list returning
/// 10 leases, on `api`'s node, as the state holds `what`.
async fn state_costs(api: &Api, what: &str) {
    let (mean, max) = timed_gets(api, "/metrics", 200).await;
    println!("/metrics scrape with {what}: mean {mean:.2} ms, max {max:.2} ms (200 scrapes)");
    let (mean, max) = timed_gets(api, "/v1/leases?prefix=m/12345&limit=10", 50).await;
    println!("prefix list (10 of them) with {what}: mean {mean:.2} ms, max {max:.2} ms (50 lists)");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let mut cluster = Cluster::for_benchmarks().await;
    let leader = cluster.leader().await;
    let api = cluster.api(leader);
    println!(
        "3-node loopback cluster, {CLIENTS} concurrent HTTP/1.1 JSON clients against the leader (node {leader})"
    );

    if a.ops > 0 {
        let (stats, ids) = grant_many(&api, a.ops, "bench", || "1h".to_string()).await;
        stats.print("grant");
        let ids = Arc::new(ids);
        let (api2, ids2) = (api.clone(), ids.clone());
        let stats = load(a.ops, move |i| {
            let (api, ids) = (api2.clone(), ids2.clone());
            async move {
                let r = api
                    .post(&format!("/v1/leases/{}/renew", ids[i]), &json!({}))
                    .await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("renew: {} {}", r.status, r.body))
                }
            }
        })
        .await;
        stats.print("renew");
        if a.batch > 0 {
            batches(&api, &ids, a.batch).await;
        }
        let stats = lookups(api.clone(), ids.clone(), a.ops * 2).await;
        stats.print("lookup (linearizable)");
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        let stats = lookups(cluster.api(follower), ids.clone(), a.ops).await;
        stats.print("lookup via follower");
        let r = api
            .post("/v1/leases/revoke-prefix", &json!({"prefix": "bench/"}))
            .await
            .expect("revoke");
        println!("revoked {} benchmark leases", r.body["revoked"]);
    }

    if a.deadline_leases > 0 {
        let n = a.deadline_leases;
        // Every lease is granted to expire at the same instant D (its TTL
        // is what is left until D when it is sent), then renewed to D again
        // (a renewal never shortens a lease, so the grant must not outlast
        // D). D leaves room for both phases at 5,000 requests/s.
        let deadline = std::time::SystemTime::now()
            + Duration::from_secs(20)
            + Duration::from_millis(n as u64 / 5 * 2);
        let until_d = move || {
            let left = deadline
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            format!("{}ms", left.as_millis().max(1000))
        };
        let (stats, ids) = grant_many(&api, n, "deadline", until_d).await;
        stats.print("grant (deadline set)");
        let ids = Arc::new(ids);
        let (api2, ids2) = (api.clone(), ids.clone());
        let stats = load(n, move |i| {
            let (api, ids) = (api2.clone(), ids2.clone());
            async move {
                let left = deadline
                    .duration_since(std::time::SystemTime::now())
                    .map_err(|_| "deadline already passed; raise the margin".to_string())?;
                let body = json!({"increment": format!("{}ms", left.as_millis())});
                let r = api
                    .post(&format!("/v1/leases/{}/renew", ids[i]), &body)
                    .await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("renew: {} {}", r.status, r.body))
                }
            }
        })
        .await;
        stats.print("renew to one deadline");
        let until_deadline = deadline
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(until_deadline).await;
        let api2 = api.clone();
        let elapsed = eventually(
            Duration::from_secs(120),
            "every deadline lease revoked",
            || {
                let api = api2.clone();
                async move {
                    let left = lease_count(&api).await;
                    let after = std::time::SystemTime::now()
                        .duration_since(deadline)
                        .unwrap_or_default();
                    if left == 0 {
                        Ok(after)
                    } else {
                        Err(format!("{left} left"))
                    }
                }
            },
        )
        .await;
        println!(
            "{n} leases sharing one deadline: all revoked {:.2} s after it",
            elapsed.as_secs_f64()
        );
    }

    if a.million > 0 {
        let n = a.million;
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        let pid = cluster.node(follower).pid().expect("running");
        let base_rss = rss_bytes(pid);
        state_costs(&cluster.api(follower), "no leases").await;
        let (stats, _) = grant_many(&api, n, "m", || "48h".to_string()).await;
        stats.print("grant (million)");
        let fapi = cluster.api(follower);
        eventually(
            Duration::from_secs(120),
            "the follower applied every lease",
            || {
                let fapi = fapi.clone();
                async move {
                    let c = lease_count(&fapi).await;
                    if c as usize >= n {
                        Ok(())
                    } else {
                        Err(format!("{c}"))
                    }
                }
            },
        )
        .await;
        let loaded_rss = rss_bytes(pid);
        state_costs(&fapi, &format!("{n} leases")).await;
        println!(
            "follower RSS: {:.1} MiB empty, {:.1} MiB with {n} leases: {:.0} bytes/lease",
            base_rss as f64 / 1048576.0,
            loaded_rss as f64 / 1048576.0,
            (loaded_rss.saturating_sub(base_rss)) as f64 / n as f64
        );
        cluster.node_mut(follower).signal(libc::SIGTERM);
        let code = cluster
            .node_mut(follower)
            .wait_exit(Duration::from_secs(60))
            .await;
        println!("follower stopped (exit code {code:?})");
        let data = cluster.dir().join(format!("node-{follower}"));
        println!(
            "follower data directory with {n} leases: {:.1} MiB",
            dir_bytes(&data) as f64 / 1048576.0
        );
        let started = Instant::now();
        cluster.restart(follower);
        cluster.wait_ready(follower, Duration::from_secs(120)).await;
        let ready = started.elapsed();
        let pid = cluster.node(follower).pid().expect("running");
        let restarted_rss = rss_bytes(pid);
        println!(
            "restart with {n} leases: ready in {:.2} s; RSS {:.1} MiB ({:.0} bytes/lease over the empty node)",
            ready.as_secs_f64(),
            restarted_rss as f64 / 1048576.0,
            (restarted_rss.saturating_sub(base_rss)) as f64 / n as f64
        );
        // Seal (Raft stops, the keys go), then unseal with the key file:
        // keys loaded, Raft started again, state rebuilt, caught up, ready.
        let fapi = cluster.api(follower);
        fapi.post_expect("/v1/sys/seal", &serde_json::json!({}), 200)
            .await;
        let started = Instant::now();
        fapi.post_expect("/v1/sys/unseal", &serde_json::json!({}), 200)
            .await;
        let keys = started.elapsed();
        cluster.wait_ready(follower, Duration::from_secs(120)).await;
        println!(
            "unseal with {n} leases: keys loaded in {:.1} ms, ready in {:.2} s",
            keys.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}
