//! Peak memory of a follower installing a large snapshot (a program that
//! prints figures, not a test).
//!
//! On a 3-node loopback cluster a follower is killed, the leader's state
//! grows until its snapshot holds at least `--snapshot-mb` MB (default 330:
//! ten times RocksDB's 32 MiB memtable cap), and the follower restarts with
//! no state and catches up through that snapshot. It prints the snapshot's
//! size, the follower's peak resident memory (`VmHWM`) up to the install,
//! and the leader's resident memory for comparison (it holds the same
//! state).
//!
//! ```sh
//! cargo build --bin keel
//! cargo run -p keel-tests --bin snapshot_memory -- [--snapshot-mb 330] [--threshold 2000]
//! ```

use keel_tests::snapshot_memory::measure_install;

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mb = arg("--snapshot-mb", 330);
    let threshold = arg("--threshold", 2000);
    let f = measure_install(mb << 20, threshold).await;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("leases in state:            {}", f.leases);
    println!(
        "snapshot installed:         {:.1} MiB",
        mib(f.snapshot_bytes)
    );
    println!(
        "follower peak RSS (VmHWM):  {:.1} MiB",
        mib(f.follower_peak_rss)
    );
    println!("follower RSS after install: {:.1} MiB", mib(f.follower_rss));
    println!("leader RSS (same state):    {:.1} MiB", mib(f.leader_rss));
    println!("restart to installed:       {:?}", f.install_time);
}
