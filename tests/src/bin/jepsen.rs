//! The fault suite's long profile: one run per fault class (and `mixed`,
//! every class at once with compound faults), each with at least
//! `--faults` faults and `--min-ops` operations, then a table per class.
//! A program that prints figures, never a test. Needs root and
//! libfaketime (see tests/tests/jepsen.rs).
//!
//! cargo run --release -p keel-tests --bin jepsen -- --nodes 5 --faults 150 --class partition
//! (KEEL_BIN picks the keel binary; by default the one beside this program.)

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use keel_tests::jepsen::nemesis::Class;
use keel_tests::jepsen::{netns, run};

#[derive(Parser, Debug)]
#[command(about = "keel's fault suite, long profile")]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Faults per run.
    #[arg(long, default_value_t = 150)]
    faults: usize,
    /// Minimum operations per run (faults continue until reached).
    #[arg(long, default_value_t = 75_000)]
    min_ops: usize,
    /// Classes to run, one run each: partition, link, process, clock,
    /// storage, membership, mixed (comma-separated or repeated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "partition,link,process,clock,storage,membership,mixed"
    )]
    class: Vec<String>,
    /// Seed (printed; the same seed replays the same fault schedule).
    #[arg(long)]
    seed: Option<u64>,
    /// Clients per node.
    #[arg(long, default_value_t = 2)]
    clients_per_node: usize,
    /// Shortest and longest hold of a fault, ms.
    #[arg(long, default_value = "2000,5000", value_delimiter = ',')]
    hold_ms: Vec<u64>,
    /// Where run folders go.
    #[arg(long, default_value = "jepsen-runs")]
    out: PathBuf,
    /// Stop injecting after this many minutes per run, even if --min-ops
    /// was not reached (the report says how many operations ran).
    #[arg(long)]
    max_minutes: Option<u64>,
    /// Run the test suite's short profile instead (with --seed, the same
    /// fault schedule as a failed test run).
    #[arg(long)]
    short: bool,
}

fn main() {
    let args = Args::parse();
    if let Some(why) = netns::unavailable() {
        eprintln!("the fault suite cannot run here: {why}");
        std::process::exit(2);
    }
    netns::enter_private_netns().expect("a private network namespace");
    let seed = args.seed.unwrap_or_else(run::fresh_seed);
    println!("seed {seed}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut failed = false;
    if args.short {
        let out = args.out.join(format!("short-{seed}"));
        let _ = std::fs::remove_dir_all(&out);
        let report = rt
            .block_on(run::run(&run::Profile::short(seed, out.clone())))
            .unwrap_or_else(|e| panic!("short profile could not complete: {e}"));
        println!("short: {}", report.summary());
        if !report.ok() {
            println!("short: VIOLATIONS, see {}/report.txt", out.display());
        }
        std::process::exit(i32::from(!report.ok()));
    }
    for name in &args.class {
        let classes = if name == "mixed" {
            Class::ALL.to_vec()
        } else {
            vec![Class::parse(name).unwrap_or_else(|| panic!("unknown class {name}"))]
        };
        let out = args.out.join(format!("{name}-{seed}"));
        let _ = std::fs::remove_dir_all(&out);
        let profile = run::Profile {
            nodes: args.nodes,
            faults: args.faults,
            classes,
            seed,
            clients_per_node: args.clients_per_node,
            hold_ms: (args.hold_ms[0], *args.hold_ms.last().expect("hold")),
            quiet_ms: 1_000,
            compound: name == "mixed",
            min_ops: args.min_ops,
            recovery_bound: Duration::from_secs(30),
            max_clock_offset_ms: 500,
            out_dir: out.clone(),
            stop_at: args
                .max_minutes
                .map(|m| std::time::SystemTime::now() + Duration::from_secs(m * 60)),
        };
        let started = std::time::Instant::now();
        match rt.block_on(run::run(&profile)) {
            Ok(report) => {
                println!(
                    "{name}: {} ({:.0} s)",
                    report.summary(),
                    started.elapsed().as_secs_f64()
                );
                failed |= !report.ok();
                if !report.ok() {
                    println!("{name}: VIOLATIONS, see {}/report.txt", out.display());
                }
                rows.push((name.clone(), report));
            }
            Err(e) => {
                println!("{name}: run failed: {e} (folder {})", out.display());
                failed = true;
            }
        }
    }
    println!();
    println!(
        "| class | ops ok | failed | unknown | faults | non-linearizable | lost | duplicated | timing violations | earliest expiry vs deadline (ms) | longest unavailability (ms) | slowest recovery (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, r) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.ok,
            r.failed,
            r.unknown,
            r.faults,
            r.verdict.not_linearizable.len(),
            r.verdict.writes.lost.len(),
            r.verdict.writes.duplicated.len(),
            r.verdict.timing.violations.len(),
            r.verdict
                .timing
                .earliest_expiry_ms
                .map_or("-".into(), |v| v.to_string()),
            r.longest_unavailable_ms,
            r.recoveries.iter().map(|(_, x)| x.ms).max().unwrap_or(0),
        );
    }
    std::process::exit(i32::from(failed));
}
