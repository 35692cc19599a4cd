//! Online snapshot benchmark (a program that prints figures, not a test).
//!
//! A 3-node loopback cluster is given `--leases` leases (default
//! 1,000,000) the fast way: the program builds that state with the pure
//! domain (one `GrantLease` apply per lease), writes it as a snapshot file
//! and restores it with `keel operator snapshot restore --force` (it names
//! no cluster) - the first figure. Then, while a client keeps granting
//! leases, it times `keel operator snapshot save` (the real CLI, end to
//! end: barrier, encoding, streaming, verify, fsync, rename) and reports
//! the file size, throughput, how long apply waited for the encoding (the
//! server's `apply_held_ms`) and the worst grant latency meanwhile. Last,
//! it restores the saved file and times until every node holds it.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/bench_snapshot [--leases 1000000]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keel_raft::backup::{self, BackupCounts, BackupHeader, BodyEncryption, Checksum};
use keel_raft::command::{Command, Proposal};
use keel_raft::domain::quota::Quotas;
use keel_raft::store::{SNAPSHOT_VERSION, encode_state};
use keel_tests::leases::{metric, now_ms};
use keel_tests::{Api, Cluster, TOKEN, eventually, run_keel};
use serde_json::json;

const HOURS_48: u64 = 48 * 3_600_000;

fn leases_arg() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == "--leases")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Writes a snapshot file of a state holding `n` leases of 48 h.
fn synthetic_snapshot(path: &Path, n: usize) {
    let mut state = keel_raft::State::default();
    let now = now_ms();
    for i in 0..n {
        let grant = Command::GrantLease {
            id: i as u64 + 1,
            ttl_ms: HOURS_48,
            max_ttl_ms: HOURS_48,
            name: Some(format!("fill/{i}")),
            account: None,
            metadata: BTreeMap::new(),
        };
        let proposal = Proposal {
            now,
            command: grant,
            idempotency: None,
            quotas: Quotas::default(),
            scope: None,
        };
        state.apply(&proposal).expect("grant");
    }
    let body = encode_state(&state).expect("encode");
    let header = BackupHeader {
        format_version: backup::FORMAT_VERSION,
        cluster_id: None,
        index: 0,
        term: 0,
        taken_at_ms: now,
        taken_by: 0,
        keel_version: "bench".into(),
        counts: BackupCounts {
            leases: n as u64,
            ..BackupCounts::default()
        },
        state_format: SNAPSHOT_VERSION,
        body_len: body.len() as u64,
        encryption: BodyEncryption::None,
    };
    let prefix = backup::encode_prefix(&header);
    let mut sum = Checksum::default();
    sum.update(&prefix);
    sum.update(&body);
    let mut file = std::fs::File::create(path).expect("create");
    file.write_all(&prefix).expect("write");
    file.write_all(&body).expect("write");
    file.write_all(&sum.finish()).expect("write");
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

/// `keel operator snapshot <op> <file> [extra]` against `addr`; panics on
/// failure. Returns the wall time and stdout.
async fn snapshot(op: &str, file: &Path, addr: &str, extra: &[&str]) -> (Duration, String) {
    let mut args: Vec<String> = ["operator", "snapshot", op]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(file.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--addr".into(), addr.into(), "--token".into(), TOKEN.into()]);
    let started = Instant::now();
    let run = run_keel(&args, Duration::from_secs(3600)).await;
    assert_eq!(run.code, Some(0), "{op} failed: {}", run.stderr);
    (started.elapsed(), run.stdout)
}

/// Waits until every node holds `n` active leases; returns when.
async fn everywhere(apis: &[Api], n: u64) {
    for api in apis {
        eventually(Duration::from_secs(1800), "every node restored", || async {
            let c = active_leases(api).await;
            if c == n {
                Ok(())
            } else {
                Err(format!("{} holds {c}", api.base))
            }
        })
        .await;
    }
}

fn print_restore(what: &str, took: Duration, all: Duration, size: u64, n: u64) {
    println!(
        "{what}: {:.2} s until committed ({:.1} MiB/s, {:.0} leases/s), {:.2} s until all 3 nodes hold the {n} leases",
        took.as_secs_f64(),
        mib(size) / took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        all.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = leases_arg();
    let mut cluster = Cluster::for_benchmarks().await;
    let leader = cluster.leader().await;
    let api = cluster.api(leader);
    let apis: Vec<Api> = (1..=3).map(|id| cluster.api(id)).collect();
    let addr = format!("http://{}", cluster.node(leader).api_addr);

    let seed = cluster.dir().join("seed.snap");
    let started = Instant::now();
    synthetic_snapshot(&seed, n);
    let seed_size = std::fs::metadata(&seed).expect("seed").len();
    println!(
        "3-node loopback cluster, leader node {leader}; built a {n}-lease snapshot ({:.1} MiB) in {:.1} s",
        mib(seed_size),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let (took, _) = snapshot("restore", &seed, &addr, &["--force"]).await;
    everywhere(&apis, n as u64).await;
    print_restore(
        "restore (seed)",
        took,
        started.elapsed(),
        seed_size,
        n as u64,
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
    let (save_time, _) = snapshot("save", &file, &addr, &[]).await;
    stop.store(true, Ordering::Relaxed);
    let (worst, during) = writer.await.expect("writer");
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
    let (inspect_time, inspected) = snapshot("inspect", &file, &addr, &[]).await;
    let in_file: u64 = inspected
        .lines()
        .find_map(|l| l.strip_prefix("leases")?.trim().parse().ok())
        .expect("leases in the inspect output");
    println!(
        "inspect: {:.2} s (checksum verified), {in_file} leases",
        inspect_time.as_secs_f64()
    );

    let started = Instant::now();
    let (took, _) = snapshot("restore", &file, &addr, &[]).await;
    everywhere(&apis, in_file).await;
    print_restore("restore", took, started.elapsed(), size, in_file);
}
