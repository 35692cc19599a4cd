//! Online snapshot benchmark (a program that prints figures, not a test).
//!
//! On a 3-node loopback cluster holding `--leases` leases (default
//! 1,000,000), it times `keel operator snapshot save` (the real CLI,
//! end to end: barrier, encoding, streaming, verify, fsync, rename) while a
//! client keeps granting leases, and reports the file size, the save's
//! throughput, how long apply waited for the encoding (the server's
//! `apply_held_ms`), and the worst grant latency during the save. Then it
//! times `keel operator snapshot restore` of that file and how long until
//! every node holds the restored state.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/bench_snapshot [--leases 1000000]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_tests::leases::metric;
use keel_tests::{Api, Cluster, TOKEN, eventually, run_keel};
use serde_json::json;

const CLIENTS: usize = 64;

fn leases_arg() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == "--leases")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Grants `n` leases named `fill/<i>` from `CLIENTS` concurrent clients.
async fn fill(api: &Api, n: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, next) = (api.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = json!({"ttl": "48h", "name": format!("fill/{i}")});
                loop {
                    match api.post("/v1/leases", &body).await {
                        Ok(r) if r.status == 201 => break,
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

async fn active_leases(api: &Api) -> u64 {
    metric(api, "keel_leases{state=\"active\"}")
        .await
        .unwrap_or(0.0) as u64
}

/// The `apply_held_ms=` of the last "snapshot exported" line of a log.
fn apply_held_ms(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find(|l| l.contains("snapshot exported"))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("apply_held_ms="))?
        .parse()
        .ok()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = leases_arg();
    let mut cluster = Cluster::for_benchmarks().await;
    let leader = cluster.leader().await;
    let api = cluster.api(leader);
    let addr = format!("http://{}", cluster.node(leader).api_addr);
    println!("3-node loopback cluster, leader node {leader}; filling {n} leases");
    let took = fill(&api, n).await;
    println!(
        "filled {n} leases in {:.1} s ({:.0} grants/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // Save while a client keeps writing; record its worst latency.
    let file = cluster.dir().join("bench.snap");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (api, stop) = (api.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut worst, mut count, mut i) = (Duration::ZERO, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let body = json!({"ttl": "48h", "name": format!("during/{i}")});
                if let Ok(r) = api.post("/v1/leases", &body).await
                    && r.status == 201
                {
                    count += 1;
                }
                worst = worst.max(t.elapsed());
                i += 1;
            }
            (worst, count)
        })
    };
    let cli = |op: &str| {
        vec![
            "operator".to_string(),
            "snapshot".to_string(),
            op.to_string(),
            file.display().to_string(),
            "--addr".to_string(),
            addr.clone(),
            "--token".to_string(),
            TOKEN.to_string(),
        ]
    };
    let started = Instant::now();
    let saved = run_keel(&cli("save"), Duration::from_secs(1800)).await;
    let save_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, during) = writer.await.expect("writer");
    assert_eq!(saved.code, Some(0), "save failed: {}", saved.stderr);
    let size = std::fs::metadata(&file).expect("snapshot file").len();
    println!(
        "save:    {:.2} s, file {:.1} MiB ({:.0} bytes/lease), {:.1} MiB/s, {:.0} leases/s",
        save_time.as_secs_f64(),
        mib(size),
        size as f64 / n as f64,
        mib(size) / save_time.as_secs_f64(),
        n as f64 / save_time.as_secs_f64()
    );
    println!(
        "         apply waited {} ms for the encoding; {during} grants during the save, worst latency {:.0} ms",
        apply_held_ms(&cluster.node(leader).log()).map_or("?".to_string(), |ms| ms.to_string()),
        worst.as_secs_f64() * 1000.0
    );
    let inspected = run_keel(&cli("inspect"), Duration::from_secs(600)).await;
    let inspect_line = inspected
        .stdout
        .lines()
        .filter(|l| l.starts_with("leases") || l.starts_with("index"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("inspect: {inspect_line}");

    // Restore the file, then wait until every node holds exactly its leases.
    let in_file: u64 = inspected
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("leases")?.trim().parse().ok())
        .expect("leases in the inspect output");
    let started = Instant::now();
    let restored = run_keel(&cli("restore"), Duration::from_secs(1800)).await;
    let restore_time = started.elapsed();
    assert_eq!(
        restored.code,
        Some(0),
        "restore failed: {}",
        restored.stderr
    );
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    for api in &apis {
        eventually(Duration::from_secs(600), "every node restored", || async {
            let c = active_leases(api).await;
            if c == in_file {
                Ok(())
            } else {
                Err(format!("{} holds {c}", api.base))
            }
        })
        .await;
    }
    let everywhere = started.elapsed();
    println!(
        "restore: {:.2} s until committed ({:.1} MiB/s, {:.0} leases/s), {:.2} s until all 3 nodes hold the {in_file} leases",
        restore_time.as_secs_f64(),
        mib(size) / restore_time.as_secs_f64(),
        in_file as f64 / restore_time.as_secs_f64(),
        everywhere.as_secs_f64()
    );
}
