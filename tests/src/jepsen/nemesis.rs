//! The nemesis: injects one fault at a time from the chosen classes, holds
//! it, heals it, then measures how long the cluster takes to be whole
//! again (every node ready, every name a voter, a write acknowledged).
//!
//! Classes and what they do:
//! - `partition`: isolate the leader; split majority/minority; a bridge
//!   (one node sees both halves); a one-way drop. iptables `INPUT` rules
//!   in the hosts' namespaces.
//! - `link`: delay with jitter on every link of one or all hosts (the
//!   proxy), 10-30% random loss (iptables `statistic`), a slow link (tc
//!   `tbf`).
//! - `process`: `kill -9` and restart (the leader half the time),
//!   SIGSTOP/SIGCONT longer than an election timeout, SIGTERM and restart.
//! - `clock`: a node's wall clock jumped by seconds to minutes, forward or
//!   back, while it runs, or a node restarted with its clock off by that
//!   much from its first instant (libfaketime); then put right.
//! - `storage`: a node's data dir wiped, or replaced by an older copy of
//!   itself, while it is down.
//! - `membership`: a node removed, wiped and re-added (it rejoins as a new
//!   incarnation); leadership transferred.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::history::History;
use super::hosts::{Hosts, copy_dir};
use super::netns::{HARNESS_IP, SUBNET, host_ip};
use super::proxy::Delay;

/// A fault class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Network partitions.
    Partition,
    /// Slow and lossy links.
    Link,
    /// Process crashes, pauses, restarts.
    Process,
    /// Wall-clock jumps.
    Clock,
    /// Lost or rolled-back data dirs.
    Storage,
    /// Membership changes and leadership transfers.
    Membership,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 6] = [
        Class::Partition,
        Class::Link,
        Class::Process,
        Class::Clock,
        Class::Storage,
        Class::Membership,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Partition => "partition",
            Class::Link => "link",
            Class::Process => "process",
            Class::Clock => "clock",
            Class::Storage => "storage",
            Class::Membership => "membership",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// One concrete fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `drops[i]` lists the hosts whose packets host `i` drops.
    Partition {
        kind: &'static str,
        drops: BTreeMap<usize, Vec<usize>>,
    },
    /// Delay on the given hosts' inbound peer links.
    Delay { hosts: Vec<usize>, delay: Delay },
    /// Random loss of peer packets into the given hosts.
    Loss { hosts: Vec<usize>, percent: u32 },
    /// A token-bucket rate limit on a host's link.
    Slow { host: usize },
    /// SIGKILL, restarted at heal.
    Kill { host: usize },
    /// SIGSTOP, SIGCONT at heal.
    Pause { host: usize },
    /// SIGTERM and an immediate restart.
    Terminate { host: usize },
    /// Wall clock moved by `secs` while running.
    Clock { host: usize, secs: i64 },
    /// Restarted with its wall clock off by `secs` from the start.
    ClockRestart { host: usize, secs: i64 },
    /// Data dir wiped while down.
    Wipe { host: usize },
    /// Data dir replaced by an older copy while down.
    Rollback { host: usize },
    /// A copy of a data dir taken while down (for a later rollback).
    SaveCopy { host: usize },
    /// Removed from the cluster, wiped, re-added at heal.
    Remove { host: usize },
    /// Leadership moved to another voter.
    Transfer,
}

/// How a heal went.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Milliseconds from the heal until the cluster was whole.
    pub ms: u64,
    /// Whether it was whole within the bound.
    pub ok: bool,
    /// What was still missing, if not.
    pub missing: String,
}

/// The fault injector of one run.
pub struct Nemesis {
    /// Classes to draw from.
    pub classes: Vec<Class>,
    rng: StdRng,
    history: History,
    copies: BTreeMap<usize, PathBuf>,
    /// Classes left in this round (each round visits every class once, in
    /// a seeded order, so every class gets its share of faults).
    round: Vec<Class>,
    /// Probe writes made so far (their names must stay unique).
    probes: u64,
    /// How long a heal may take before it counts as a liveness failure.
    pub recovery_bound: Duration,
}

fn others(n: usize, except: &[usize]) -> Vec<usize> {
    (1..=n).filter(|h| !except.contains(h)).collect()
}

impl Nemesis {
    /// A nemesis drawing from `classes`.
    pub fn new(
        classes: Vec<Class>,
        rng: StdRng,
        history: History,
        recovery_bound: Duration,
    ) -> Self {
        Nemesis {
            classes,
            rng,
            history,
            copies: BTreeMap::new(),
            round: Vec::new(),
            probes: 0,
            recovery_bound,
        }
    }

    /// Picks the next fault.
    pub async fn pick(&mut self, hosts: &Hosts) -> (Class, Fault) {
        if self.round.is_empty() {
            self.round = self.classes.clone();
            for i in (1..self.round.len()).rev() {
                self.round.swap(i, self.rng.random_range(0..=i));
            }
        }
        let class = self.round.pop().expect("a class left in the round");
        let n = hosts.len();
        let any = |rng: &mut StdRng| rng.random_range(1..=n);
        let leader = leader_of(hosts).await;
        let fault = match class {
            Class::Partition => {
                let mut drops: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                let cut = |drops: &mut BTreeMap<usize, Vec<usize>>, a: &[usize], b: &[usize]| {
                    for &x in a {
                        for &y in b {
                            drops.entry(x).or_default().push(y);
                            drops.entry(y).or_default().push(x);
                        }
                    }
                };
                let kind = match self.rng.random_range(0..4) {
                    0 => {
                        let l = leader.unwrap_or_else(|| any(&mut self.rng));
                        cut(&mut drops, &[l], &others(n, &[l]));
                        "isolate-leader"
                    }
                    1 => {
                        let mut all: Vec<usize> = (1..=n).collect();
                        for i in (1..all.len()).rev() {
                            all.swap(i, self.rng.random_range(0..=i));
                        }
                        let minority = &all[..(n - 1) / 2];
                        cut(&mut drops, minority, &all[(n - 1) / 2..]);
                        "majority-minority"
                    }
                    2 => {
                        // Halves either side of a bridge node that sees both.
                        let bridge = any(&mut self.rng);
                        let rest = others(n, &[bridge]);
                        let (a, b) = rest.split_at(rest.len() / 2);
                        cut(&mut drops, a, b);
                        "bridge"
                    }
                    _ => {
                        let to = any(&mut self.rng);
                        let from = others(n, &[to])[self.rng.random_range(0..n - 1)];
                        drops.entry(to).or_default().push(from);
                        "one-way"
                    }
                };
                Fault::Partition { kind, drops }
            }
            Class::Link => match self.rng.random_range(0..3) {
                0 => {
                    let base_ms = self.rng.random_range(50..=500);
                    let jitter_ms = self.rng.random_range(0..=base_ms / 2);
                    let hosts = if self.rng.random_bool(0.5) {
                        (1..=n).collect()
                    } else {
                        vec![any(&mut self.rng)]
                    };
                    Fault::Delay {
                        hosts,
                        delay: Delay { base_ms, jitter_ms },
                    }
                }
                1 => Fault::Loss {
                    hosts: (1..=n).collect(),
                    percent: self.rng.random_range(10..=30),
                },
                _ => Fault::Slow {
                    host: any(&mut self.rng),
                },
            },
            Class::Process => {
                let host = match leader {
                    Some(l) if self.rng.random_bool(0.5) => l,
                    _ => any(&mut self.rng),
                };
                match self.rng.random_range(0..3) {
                    0 => Fault::Kill { host },
                    1 => Fault::Pause { host },
                    _ => Fault::Terminate { host },
                }
            }
            Class::Clock => {
                let host = match leader {
                    Some(l) if self.rng.random_bool(0.5) => l,
                    _ => any(&mut self.rng),
                };
                let mag = [2, 5, 30, 120][self.rng.random_range(0..4)];
                let secs = if self.rng.random_bool(0.5) { mag } else { -mag };
                if self.rng.random_bool(0.7) {
                    Fault::Clock { host, secs }
                } else {
                    Fault::ClockRestart { host, secs }
                }
            }
            Class::Storage => {
                let host = any(&mut self.rng);
                match (self.copies.contains_key(&host), self.rng.random_range(0..3)) {
                    (true, 0) => Fault::Rollback { host },
                    (_, 1) => Fault::SaveCopy { host },
                    _ => Fault::Wipe { host },
                }
            }
            Class::Membership => {
                if self.rng.random_bool(0.5) {
                    Fault::Transfer
                } else {
                    Fault::Remove {
                        host: any(&mut self.rng),
                    }
                }
            }
        };
        (class, fault)
    }

    /// Injects `fault`.
    pub async fn inject(
        &mut self,
        hosts: &mut Hosts,
        class: Class,
        fault: &Fault,
    ) -> Result<(), String> {
        self.history
            .fault("inject", class.name(), &format!("{fault:?}"));
        match fault {
            Fault::Partition { drops, .. } => {
                for (host, from) in drops {
                    for f in from {
                        hosts.net().exec(
                            *host,
                            "iptables",
                            &["-A", "INPUT", "-s", &host_ip(*f), "-j", "DROP"],
                        )?;
                    }
                }
            }
            Fault::Delay { hosts: hs, delay } => {
                for h in hs {
                    hosts.set_delay(*h, *delay);
                }
            }
            Fault::Loss { hosts: hs, percent } => {
                let p = format!("{:.2}", f64::from(*percent) / 100.0);
                for h in hs {
                    let net = hosts.net();
                    net.exec(
                        *h,
                        "iptables",
                        &["-A", "INPUT", "-s", HARNESS_IP, "-j", "ACCEPT"],
                    )?;
                    net.exec(
                        *h,
                        "iptables",
                        &[
                            "-A",
                            "INPUT",
                            "-s",
                            &format!("{SUBNET}.0/24"),
                            "-m",
                            "statistic",
                            "--mode",
                            "random",
                            "--probability",
                            &p,
                            "-j",
                            "DROP",
                        ],
                    )?;
                }
            }
            Fault::Slow { host } => hosts.net().exec(
                *host,
                "tc",
                &[
                    "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "256kbit", "burst",
                    "16kb", "latency", "300ms",
                ],
            )?,
            Fault::Kill { host } => hosts.kill9(*host),
            Fault::Pause { host } => hosts.signal(*host, libc::SIGSTOP),
            Fault::Terminate { host } => {
                hosts.terminate(*host, Duration::from_secs(40)).await;
            }
            Fault::Clock { host, secs } => hosts.set_clock(*host, &format!("{secs:+}s"))?,
            Fault::ClockRestart { host, secs } => {
                hosts.kill9(*host);
                hosts.set_clock(*host, &format!("{secs:+}s"))?;
                hosts.spawn(*host)?;
            }
            Fault::Wipe { host } | Fault::Rollback { host } | Fault::SaveCopy { host } => {
                if self.rng.random_bool(0.5) {
                    hosts.kill9(*host);
                } else {
                    hosts.terminate(*host, Duration::from_secs(40)).await;
                }
                let dir = hosts.host(*host).data_dir.clone();
                match fault {
                    Fault::Wipe { .. } => {
                        std::fs::remove_dir_all(&dir)
                            .map_err(|e| format!("wipe {}: {e}", dir.display()))?;
                    }
                    Fault::Rollback { .. } => {
                        let copy = self.copies.remove(host).expect("picked with a copy");
                        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
                        std::fs::rename(&copy, &dir).map_err(|e| e.to_string())?;
                    }
                    _ => {
                        let copy = hosts.dir.join(format!("node-{host}.copy"));
                        copy_dir(&dir, &copy)?;
                        self.copies.insert(*host, copy);
                    }
                }
            }
            Fault::Remove { host } => {
                let leader = leader_of(hosts)
                    .await
                    .ok_or("no leader to remove through")?;
                let r = hosts
                    .api(leader, Duration::from_secs(20))
                    .delete(&format!("/v1/cluster/members/{host}"))
                    .await?;
                if r.status != 200 && r.status != 204 {
                    // Refused (e.g. it would break quorum safety): nothing
                    // changed; the fault becomes a no-op.
                    self.history.fault(
                        "note",
                        class.name(),
                        &format!("removal refused: {} {}", r.status, r.text),
                    );
                    return Ok(());
                }
                hosts.kill9(*host);
                let dir = hosts.host(*host).data_dir.clone();
                let _ = std::fs::remove_dir_all(&dir);
                self.copies.remove(host);
            }
            Fault::Transfer => {
                if let Some(l) = leader_of(hosts).await {
                    let _ = hosts
                        .api(l, Duration::from_secs(10))
                        .post("/v1/cluster/transfer-leader", &json!({}))
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Heals `fault` (and, to be sure, every network rule).
    pub async fn heal(
        &mut self,
        hosts: &mut Hosts,
        class: Class,
        fault: &Fault,
    ) -> Result<(), String> {
        for h in 1..=hosts.len() {
            hosts.net().exec(h, "iptables", &["-F", "INPUT"])?;
            let _ = hosts
                .net()
                .exec(h, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
            hosts.set_delay(h, Delay::default());
            if hosts.host(h).clock_file.is_some() {
                hosts.set_clock(h, "+0")?;
            }
            if hosts.host(h).paused {
                hosts.signal(h, libc::SIGCONT);
            }
        }
        for h in 1..=hosts.len() {
            if !hosts.is_running(h) {
                hosts.kill9(h);
                hosts.spawn(h)?;
            }
        }
        self.history
            .fault("heal", class.name(), &format!("{fault:?}"));
        Ok(())
    }

    /// Waits until every node is ready, every name is a voter and a write
    /// is acknowledged; reports how long that took.
    pub async fn recover(&mut self, hosts: &Hosts) -> Recovery {
        let start = tokio::time::Instant::now();
        let until = start + self.recovery_bound;
        let n = hosts.len();
        let mut missing;
        loop {
            missing = whole(hosts, n, &mut self.probes)
                .await
                .err()
                .unwrap_or_default();
            if missing.is_empty() {
                return Recovery {
                    ms: start.elapsed().as_millis() as u64,
                    ok: true,
                    missing,
                };
            }
            if tokio::time::Instant::now() >= until {
                return Recovery {
                    ms: start.elapsed().as_millis() as u64,
                    ok: false,
                    missing,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `Ok` when the cluster is whole; `Err(what is missing)` otherwise.
async fn whole(hosts: &Hosts, n: usize, probe: &mut u64) -> Result<(), String> {
    for h in 1..=n {
        let r = hosts.api(h, Duration::from_secs(2)).get("/readyz").await;
        if !matches!(&r, Ok(r) if r.status == 200) {
            return Err(format!("node {h} not ready"));
        }
    }
    // Voters as the leader sees them, by incarnation: a name being a voter
    // is not enough, the incarnation each node runs now must be the voter
    // (a node whose data dir was replaced runs another one).
    let leader = leader_of(hosts).await.ok_or("no leader known")?;
    let view = hosts
        .api(leader, Duration::from_secs(3))
        .get("/v1/cluster")
        .await
        .map_err(|e| format!("cluster view: {e}"))?;
    let voters: Vec<(u64, u64)> = view.body["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|x| x["role"] == "voter")
                .filter_map(|x| Some((x["id"].as_u64()?, x["raft_id"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut names: Vec<u64> = voters.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    if names != (1..=n as u64).collect::<Vec<_>>() {
        return Err(format!("voters are {voters:?}"));
    }
    for h in 1..=n {
        let own = cluster_view(hosts, h)
            .await
            .and_then(|v| v["raft_id"].as_u64())
            .ok_or_else(|| format!("node {h} shows no cluster view"))?;
        if !voters.iter().any(|(_, id)| *id == own) {
            return Err(format!(
                "node {h} runs raft id {own}, which is not a voter (voters {voters:?})"
            ));
        }
    }
    *probe += 1;
    let h = (*probe as usize % n) + 1;
    let r = hosts
        .api(h, Duration::from_secs(3))
        .post(
            "/v1/leases",
            &json!({"ttl": 5, "name": format!("probe/{probe}")}),
        )
        .await
        .map_err(|e| format!("probe write: {e}"))?;
    if r.status != 201 {
        return Err(format!(
            "probe write through node {h}: {} {}",
            r.status,
            r.code()
        ));
    }
    Ok(())
}

/// The leader, as the first answering node sees it.
pub async fn leader_of(hosts: &Hosts) -> Option<usize> {
    for h in 1..=hosts.len() {
        if let Ok(r) = hosts
            .api(h, Duration::from_secs(1))
            .get("/v1/cluster")
            .await
            && let Some(l) = r.body["leader"].as_u64()
        {
            return Some(l as usize);
        }
    }
    None
}

/// The body of `/v1/cluster` from host `h`, if it answers.
pub async fn cluster_view(hosts: &Hosts, h: usize) -> Option<Value> {
    let r = hosts
        .api(h, Duration::from_secs(2))
        .get("/v1/cluster")
        .await
        .ok()?;
    (r.status == 200).then_some(r.body)
}
