//! The fault suite's short profile: a 3-node cluster on hosts with their
//! own network namespaces, 36 faults (partitions, slow and lossy links,
//! crashes and pauses, clock jumps, lost and rolled-back data dirs,
//! membership changes; some compound with a crash elsewhere) under a
//! recorded client workload, then every checker (per-lease
//! linearizability, lease timing, no lost or duplicated write, agreement
//! and derived state on every node, liveness after each heal).
//!
//! Needs root (network namespaces, iptables, tc) and libfaketime; where
//! they are missing the test fails and says why, it never skips. The seed
//! is printed; `KEEL_JEPSEN_SEED=<seed>` (or `jepsen --short --seed
//! <seed>`) reruns the same fault schedule and workload choices (timing,
//! being real processes and sockets, differs run to run).
//! A failing run keeps its folder (history, node logs, final states,
//! report) and prints where it is.

use keel_tests::jepsen::{netns, run};

#[test]
fn short_fault_profile_finds_no_violation() {
    if let Some(why) = netns::unavailable() {
        panic!("the fault suite cannot run here: {why}");
    }
    netns::enter_private_netns().expect("a private network namespace");
    let seed = std::env::var("KEEL_JEPSEN_SEED")
        .ok()
        .map(|s| s.parse().expect("KEEL_JEPSEN_SEED is a number"))
        .unwrap_or_else(run::fresh_seed);
    let out = std::env::temp_dir().join(format!("keel-jepsen-short-{seed}"));
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "fault suite: seed {seed} (rerun with KEEL_JEPSEN_SEED={seed}); run folder {}",
        out.display()
    );
    let profile = run::Profile::short(seed, out.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(run::run(&profile)).unwrap_or_else(|e| {
        panic!(
            "fault run (seed {seed}) could not complete: {e}; folder {}",
            out.display()
        )
    });
    println!("fault suite: {}", report.summary());
    if report.ok() {
        let _ = std::fs::remove_dir_all(&out);
    } else {
        let text = std::fs::read_to_string(out.join("report.txt")).unwrap_or_default();
        panic!(
            "fault suite found violations (seed {seed}); history, logs and report kept in {}\n{text}",
            out.display()
        );
    }
    assert!(
        report.faults >= 30,
        "only {} faults injected",
        report.faults
    );
}

#[test]
fn hosts_left_by_a_killed_harness_are_removed() {
    if let Some(why) = netns::unavailable() {
        panic!("the fault suite cannot run here: {why}");
    }
    // A namespace named for a harness pid that no longer runs (pid_max is
    // at most 2^22, so this one cannot be alive), with a process inside.
    let stale = "keelj4194305n1";
    netns::run("ip", &["netns", "add", stale]).expect("ip netns add");
    let mut sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", stale, "sleep", "600"])
        .spawn()
        .expect("a process in the stale namespace");
    // Wait until the process is inside the namespace: cleaning before
    // `ip netns exec` has entered it finds no pid to kill there (a loaded
    // CI host lost this race once).
    let entered = (0..500).any(|_| {
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", stale])
            .output()
            .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
            .unwrap_or(false);
        if !pids {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        pids
    });
    assert!(entered, "the process never entered the stale namespace");
    netns::clean_stale();
    let left = std::fs::read_dir("/var/run/netns")
        .map(|d| d.flatten().any(|e| e.file_name() == stale))
        .unwrap_or(false);
    let reaped = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        matches!(sleeper.try_wait(), Ok(Some(_)))
    });
    if left || !reaped {
        let _ = sleeper.kill();
        let _ = netns::run("ip", &["netns", "del", stale]);
    }
    assert!(!left, "the stale namespace {stale} is still there");
    assert!(reaped, "the process inside the stale namespace still runs");
}
