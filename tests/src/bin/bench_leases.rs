//! Lease benchmark (a program that prints figures, not a test).
//!
//! On a 3-node loopback cluster, with 64 concurrent HTTP/1.1 clients sending
//! JSON to the leader, it measures throughput and p50/p99 latency of lease
//! grant, renew and linearizable lookup; then how long after a shared
//! deadline 100,000 leases are all expired, and the latency of other
//! requests meanwhile; then, with 10,000 accounts and 1,000,000 leases
//! held, the same single operations again (against the empty figures),
//! resident memory per lease, and how long a node holding them takes to
//! restart and become ready. With `--batch N` it also grants and renews
//! leases through `POST /v1/leases/batch`, N items a request, prints
//! leases per second, and loads the deadline and million leases that way.
//!
//! ```sh
//! cargo build --release --bin keel
//! cargo run --release -p keel-tests --bin bench_leases -- [--ops 50000] [--batch 100] [--deadline-leases 100000] [--million 1000000] [--accounts 10000]
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
    accounts: usize,
}

fn args() -> Args {
    let mut a = Args {
        ops: 50_000,
        batch: 100,
        deadline_leases: 100_000,
        million: 1_000_000,
        accounts: 10_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let n = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--ops" => a.ops = n,
            "--batch" => a.batch = n.min(1000),
            "--deadline-leases" => a.deadline_leases = n,
            "--million" => a.million = n,
            "--accounts" => a.accounts = n,
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

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<22} {:>8} ok {:>5} err  {:>9.0} ops/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.ok,
            self.errors,
            self.rate(),
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

async fn renew(api: &Api, id: &str, body: Value) -> Result<(), String> {
    let r = api.post(&format!("/v1/leases/{id}/renew"), &body).await?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("renew: {} {}", r.status, r.body))
    }
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
    (stats, collected(ids))
}

/// The ids the load's clients filled in, once they are done.
fn collected(ids: Arc<std::sync::Mutex<Vec<String>>>) -> Vec<String> {
    Arc::try_unwrap(ids)
        .expect("no other owner")
        .into_inner()
        .unwrap()
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

/// Leases held, as `api`'s node's state gauges count them.
async fn lease_count(api: &Api) -> u64 {
    metric(api, "keel_leases").await as u64
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

/// Single-operation throughput, in operations per second.
struct Rates {
    grant: f64,
    renew: f64,
    lookup: f64,
}

/// Grants `ops` leases named `prefix/i`, renews each once and looks them
/// up twice over (linearizable, on the leader), one request per lease;
/// then revokes them by prefix. Prints each phase.
async fn single_ops(api: &Api, ops: usize, prefix: &str) -> (Rates, Arc<Vec<String>>) {
    let (stats, ids) = grant_many(api, ops, prefix, || "1h".to_string()).await;
    stats.print("grant");
    let grant = stats.rate();
    let ids = Arc::new(ids);
    let (api2, ids2) = (api.clone(), ids.clone());
    let stats = load(ops, move |i| {
        let (api, ids) = (api2.clone(), ids2.clone());
        async move { renew(&api, &ids[i], json!({})).await }
    })
    .await;
    stats.print("renew");
    let renew = stats.rate();
    let stats = lookups(api.clone(), ids.clone(), ops * 2).await;
    stats.print("lookup (linearizable)");
    let rates = Rates {
        grant,
        renew,
        lookup: stats.rate(),
    };
    (rates, ids)
}

async fn revoke_prefix(api: &Api, prefix: &str) -> u64 {
    let r = api
        .post("/v1/leases/revoke-prefix", &json!({ "prefix": prefix }))
        .await
        .expect("revoke");
    r.body["revoked"].as_u64().unwrap_or(0)
}

/// A metric's value on `api`'s node (the sum of its series).
async fn metric(api: &Api, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("metrics");
    let body = text.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Grants `n` leases named `prefix/i`, `size` a batch request, each with
/// the TTL `ttl()` gives when its batch is sent.
async fn grant_batches(
    api: &Api,
    n: usize,
    size: usize,
    prefix: &str,
    ttl: impl Fn() -> String + Send + Sync + 'static,
) -> (Stats, Vec<String>) {
    let requests = n.div_ceil(size);
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (api2, ids2, prefix, ttl) = (api.clone(), ids.clone(), prefix.to_string(), Arc::new(ttl));
    let stats = load(requests, move |r| {
        let (api, ids, prefix, ttl) = (api2.clone(), ids2.clone(), prefix.clone(), ttl.clone());
        async move {
            let range = r * size..((r + 1) * size).min(n);
            let ttl = ttl();
            let grants: Vec<Value> = range
                .clone()
                .map(|i| json!({"ttl": ttl, "name": format!("{prefix}/{i}")}))
                .collect();
            let reply = api
                .post("/v1/leases/batch", &json!({ "grant": grants }))
                .await?;
            if reply.status != 200 || reply.body["failed"] != 0 {
                return Err(format!("batch: {} {}", reply.status, reply.body));
            }
            let items = reply.body["grant"].as_array().cloned().unwrap_or_default();
            same_count(items.len(), range.len())?;
            let mut ids = ids.lock().unwrap();
            for (i, item) in range.zip(items) {
                ids[i] = item["lease"]["id"].as_str().unwrap_or_default().to_string();
            }
            Ok(())
        }
    })
    .await;
    (stats, collected(ids))
}

/// Renews `ids` to the instant `deadline` (the increment is what is left
/// until it when each request is sent): one request per lease, or batches
/// of `size` when `size > 0`.
async fn renew_to(
    api: &Api,
    ids: Arc<Vec<String>>,
    size: usize,
    deadline: std::time::SystemTime,
) -> Stats {
    let left = move || {
        deadline
            .duration_since(std::time::SystemTime::now())
            .map(|d| format!("{}ms", d.as_millis()))
            .map_err(|_| "deadline already passed; raise the margin".to_string())
    };
    let api = api.clone();
    if size == 0 {
        return load(ids.len(), move |i| {
            let (api, ids) = (api.clone(), ids.clone());
            async move { renew(&api, &ids[i], json!({ "increment": left()? })).await }
        })
        .await;
    }
    load(ids.len().div_ceil(size), move |r| {
        let (api, ids) = (api.clone(), ids.clone());
        async move {
            let increment = left()?;
            let renew: Vec<Value> = ids[r * size..((r + 1) * size).min(ids.len())]
                .iter()
                .map(|id| json!({"id": id, "increment": increment}))
                .collect();
            send_batch(&api, json!({ "renew": renew }), "renew").await
        }
    })
    .await
}

/// `n` leases sharing one deadline D: how long after D the leader has
/// expired them all, and how the cluster answers meanwhile (lookups of a
/// live lease and grants from 4 clients, from D until the last expiry).
async fn deadline_storm(api: &Api, n: usize, batch: usize) {
    // Every lease is granted with the time left until D when it is sent,
    // then renewed to D again (a renewal never shortens a lease, so the
    // grant must not outlast D). D leaves room for both phases at 5,000
    // leases/s one by one, or 10,000/s in batches.
    let per_lease_us = if batch > 0 { 100 } else { 400 };
    let deadline = std::time::SystemTime::now()
        + Duration::from_secs(20)
        + Duration::from_micros(n as u64 * per_lease_us);
    let until_d = move || {
        let left = deadline
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        format!("{}ms", left.as_millis().max(1000))
    };
    let (stats, ids) = if batch > 0 {
        grant_batches(api, n, batch, "deadline", until_d).await
    } else {
        grant_many(api, n, "deadline", until_d).await
    };
    stats.print("grant (deadline set)");
    // A request that failed granted nothing: wait for what was granted.
    let n = ids.iter().filter(|id| !id.is_empty()).count();
    let stats = renew_to(api, Arc::new(ids), batch, deadline).await;
    stats.print("renew to one deadline");
    let probe = grant(api, json!({"ttl": "1h", "name": "probe"}))
        .await
        .expect("probe lease");
    let expired_before = metric(api, "keel_lease_expirations_total").await;
    let until_deadline = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until_deadline).await;

    // The probe load runs until the last expiry is counted.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut probes = Vec::new();
    for client in 0..4 {
        let (api, probe, done) = (api.clone(), probe.clone(), done.clone());
        probes.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = if client % 2 == 0 {
                    api.get(&format!("/v1/leases/{probe}")).await
                } else {
                    api.post("/v1/leases", &json!({"ttl": "1h", "name": "storm/x"}))
                        .await
                };
                match r {
                    Ok(r) if r.status < 300 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let api2 = api.clone();
    let elapsed = eventually(
        Duration::from_secs(120),
        "every deadline lease expired",
        || {
            let api = api2.clone();
            async move {
                let expired = metric(&api, "keel_lease_expirations_total").await - expired_before;
                let after = std::time::SystemTime::now()
                    .duration_since(deadline)
                    .unwrap_or_default();
                if expired >= n as f64 {
                    Ok(after)
                } else {
                    Err(format!("{expired} expired"))
                }
            }
        },
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let mut storm = Stats {
        ok: 0,
        errors: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for p in probes {
        let (lat, errors) = p.await.expect("probe client");
        storm.latencies.extend(lat);
        storm.errors += errors;
    }
    storm.latencies.sort();
    storm.ok = storm.latencies.len();
    println!(
        "{n} leases sharing one deadline: all expired {:.2} s after it (leader's expiry count)",
        elapsed.as_secs_f64()
    );
    storm.print("lookups+grants meanwhile");
    revoke_prefix(api, "storm/").await;
    revoke_prefix(api, "probe").await;
}

/// Creates `n` accounts named `bench-i`.
async fn create_accounts(api: &Api, n: usize) -> Stats {
    let api = api.clone();
    load(n, move |i| {
        let api = api.clone();
        async move {
            let r = api
                .post("/v1/accounts", &json!({ "name": format!("bench-{i}") }))
                .await?;
            if r.status == 201 {
                Ok(())
            } else {
                Err(format!("account: {} {}", r.status, r.body))
            }
        }
    })
    .await
}

fn ratio_line(what: &str, empty: f64, loaded: f64) {
    println!(
        "{what:<8} {empty:>9.0} ops/s empty, {loaded:>9.0} ops/s loaded: {:+.1}%",
        (loaded / empty - 1.0) * 100.0
    );
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

    let mut empty = None;
    if a.ops > 0 {
        let (rates, ids) = single_ops(&api, a.ops, "bench").await;
        empty = Some(rates);
        if a.batch > 0 {
            batches(&api, &ids, a.batch).await;
        }
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        let stats = lookups(cluster.api(follower), ids.clone(), a.ops).await;
        stats.print("lookup via follower");
        println!(
            "revoked {} benchmark leases",
            revoke_prefix(&api, "bench/").await
        );
    }

    if a.deadline_leases > 0 {
        deadline_storm(&api, a.deadline_leases, a.batch).await;
    }

    if a.million > 0 {
        let n = a.million;
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        let pid = cluster.node(follower).pid().expect("running");
        if a.accounts > 0 {
            let stats = create_accounts(&api, a.accounts).await;
            stats.print(&format!("create {} accounts", a.accounts));
        }
        let base_rss = rss_bytes(pid);
        state_costs(&cluster.api(follower), "no leases").await;
        let (stats, _) = if a.batch > 0 {
            grant_batches(&api, n, a.batch, "m", || "48h".to_string()).await
        } else {
            grant_many(&api, n, "m", || "48h".to_string()).await
        };
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
            "follower RSS: {:.1} MiB with {} accounts, {:.1} MiB with {n} leases more: {:.0} bytes/lease",
            base_rss as f64 / 1048576.0,
            a.accounts,
            loaded_rss as f64 / 1048576.0,
            (loaded_rss.saturating_sub(base_rss)) as f64 / n as f64
        );
        if let Some(empty) = &empty {
            println!(
                "single operations again, with {n} leases and {} accounts held:",
                a.accounts
            );
            let (loaded, _) = single_ops(&api, a.ops, "loaded").await;
            ratio_line("grant", empty.grant, loaded.grant);
            ratio_line("renew", empty.renew, loaded.renew);
            ratio_line("lookup", empty.lookup, loaded.lookup);
            revoke_prefix(&api, "loaded/").await;
        }
        restart_and_unseal(&mut cluster, follower, n, base_rss).await;
    }
}

/// Restarts the follower holding `n` leases, then seals and unseals it,
/// timing each until it is ready again.
async fn restart_and_unseal(cluster: &mut Cluster, follower: u64, n: usize, base_rss: u64) {
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
        "restart with {n} leases: ready in {:.2} s; RSS {:.1} MiB ({:.0} bytes/lease over the node without them)",
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
