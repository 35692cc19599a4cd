//! One fault run from start to verdict: hosts up, accounts made, clients
//! started, faults injected on a schedule with heals in between, clients
//! stopped, everything healed, every node's final state read, every
//! checker run. The run folder keeps the history (`history.jsonl`), every
//! node's log and final state, and `report.txt`.

use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::check::final_state::{AccountRecord, CertRecord, LeaseRecord, NodeState};
use super::check::{Verdict, check_all};
use super::history::{Call, History, Outcome, Recorded, wall_ms};
use super::hosts::Hosts;
use super::nemesis::{Class, Fault, Nemesis, Recovery};
use super::netns::Net;
use super::workload::{Workload, parse_rfc3339_ms};
use crate::api::Api;

/// What to run.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Cluster size (3 or 5).
    pub nodes: usize,
    /// Faults to inject.
    pub faults: usize,
    /// Classes to draw from.
    pub classes: Vec<Class>,
    /// Seed of every random choice (faults, workload).
    pub seed: u64,
    /// Clients per node.
    pub clients_per_node: usize,
    /// How long a fault is held (ms, uniform in the range).
    pub hold_ms: (u64, u64),
    /// Quiet time after each recovery (ms).
    pub quiet_ms: u64,
    /// Sometimes inject a second fault (a crash elsewhere) at once.
    pub compound: bool,
    /// Keep running (and injecting) until at least this many operations.
    pub min_ops: usize,
    /// How long a heal may take before it is a liveness failure.
    pub recovery_bound: Duration,
    /// `--max-clock-offset` of the nodes (ms): the timing bound.
    pub max_clock_offset_ms: i64,
    /// The run folder.
    pub out_dir: PathBuf,
    /// Stop injecting at this time even if `min_ops` was not reached.
    pub stop_at: Option<std::time::SystemTime>,
}

impl Profile {
    /// The short profile the test suite runs: 3 nodes, 36 faults (six of
    /// each class), compound faults on, 1-3 s holds.
    pub fn short(seed: u64, out_dir: PathBuf) -> Profile {
        Profile {
            nodes: 3,
            faults: 36,
            classes: Class::ALL.to_vec(),
            seed,
            clients_per_node: 2,
            hold_ms: (1_000, 3_000),
            quiet_ms: 500,
            compound: true,
            min_ops: 0,
            recovery_bound: Duration::from_secs(30),
            max_clock_offset_ms: 500,
            out_dir,
            stop_at: None,
        }
    }
}

/// A seed from the clock, for runs not given one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    t.as_nanos() as u64 ^ u64::from(std::process::id())
}

/// Figures of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Operations acknowledged.
    pub ok: usize,
    /// Operations definitely refused.
    pub failed: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
    /// Faults injected.
    pub faults: usize,
    /// Heals and how long the cluster took to be whole after each.
    pub recoveries: Vec<(Class, Recovery)>,
    /// The longest time with no write acknowledged anywhere (ms).
    pub longest_unavailable_ms: u64,
    /// What the checkers found.
    pub verdict: Verdict,
    /// The run folder.
    pub dir: PathBuf,
}

impl RunReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.verdict.ok()
    }

    /// A short table row.
    pub fn summary(&self) -> String {
        let worst = self.recoveries.iter().map(|(_, r)| r.ms).max().unwrap_or(0);
        format!(
            "ops ok {} / failed {} / unknown {}; faults {}; leases checked {}; non-linearizable {}; \
             lost {}; duplicated {}; refused-but-applied {}; disagreements {}; timing violations {}; \
             earliest expiry vs deadline {} ms; latest active past deadline {} ms; \
             longest unavailability {} ms; slowest recovery {} ms; liveness failures {}",
            self.ok,
            self.failed,
            self.unknown,
            self.faults,
            self.verdict.leases_checked,
            self.verdict.not_linearizable.len(),
            self.verdict.writes.lost.len(),
            self.verdict.writes.duplicated.len(),
            self.verdict.writes.lies.len(),
            self.verdict.derived.len(),
            self.verdict.timing.violations.len(),
            self.verdict
                .timing
                .earliest_expiry_ms
                .map_or("-".into(), |v| v.to_string()),
            self.verdict
                .timing
                .latest_active_ms
                .map_or("-".into(), |v| v.to_string()),
            self.longest_unavailable_ms,
            worst,
            self.verdict.liveness.len(),
        )
    }
}

/// Runs `profile`. The caller must be in its private network namespace
/// (see [`super::netns::enter_private_netns`]).
pub async fn run(profile: &Profile) -> Result<RunReport, String> {
    std::fs::create_dir_all(&profile.out_dir).map_err(|e| e.to_string())?;
    let net = Net::create(profile.nodes)?;
    let fake_clocks = profile.classes.contains(&Class::Clock);
    let extra = vec![
        "--max-clock-offset".to_string(),
        format!("{}ms", profile.max_clock_offset_ms),
    ];
    let mut hosts = Hosts::start(net, &profile.out_dir, extra, fake_clocks).await?;
    let history = History::new();
    let mut nemesis = Nemesis::new(
        profile.classes.clone(),
        StdRng::seed_from_u64(profile.seed),
        history.clone(),
        profile.recovery_bound,
    );
    let boot = nemesis.recover(&hosts).await;
    if !boot.ok {
        return Err(format!("the cluster never formed: {}", boot.missing));
    }
    let apis: Vec<Api> = (1..=profile.nodes)
        .map(|i| hosts.api(i, super::workload::REQUEST_TIMEOUT))
        .collect();
    let workload = Workload::new(history.clone(), apis);
    workload.setup().await?;
    let clients = workload.spawn_clients(profile.clients_per_node, profile.seed);

    let mut rng = StdRng::seed_from_u64(profile.seed.rotate_left(17));
    let mut recoveries = Vec::new();
    let mut injected = 0;
    let mut liveness = Vec::new();
    let out_of_time = || {
        profile
            .stop_at
            .is_some_and(|t| std::time::SystemTime::now() >= t)
    };
    while (injected < profile.faults || history.len() < profile.min_ops) && !out_of_time() {
        let (class, fault) = nemesis.pick(&hosts).await;
        let mut faults = vec![(class, fault)];
        if profile.compound && rng.random_bool(0.2) {
            let host = rng.random_range(1..=profile.nodes);
            faults.push((Class::Process, Fault::Kill { host }));
        }
        for (class, fault) in &faults {
            if let Err(e) = nemesis.inject(&mut hosts, *class, fault).await {
                history.fault("error", class.name(), &e);
            }
            injected += 1;
        }
        let hold = rng.random_range(profile.hold_ms.0..=profile.hold_ms.1);
        tokio::time::sleep(Duration::from_millis(hold)).await;
        for (class, fault) in &faults {
            nemesis.heal(&mut hosts, *class, fault).await?;
        }
        let rec = nemesis.recover(&hosts).await;
        if !rec.ok {
            liveness.push(format!(
                "after healing {:?}: not whole within {:?} ({})",
                faults, profile.recovery_bound, rec.missing
            ));
        }
        recoveries.push((faults[0].0, rec));
        tokio::time::sleep(Duration::from_millis(profile.quiet_ms)).await;
    }
    workload.stop();
    for c in clients {
        let _ = c.await;
    }
    let fin = nemesis.recover(&hosts).await;
    if !fin.ok {
        liveness.push(format!("not whole at the end: {}", fin.missing));
    }
    let finals = match final_states(&hosts).await {
        Ok(finals) => finals,
        Err(e) => {
            // Keep what the clients saw, for whoever looks into it.
            let _ = history
                .snapshot()
                .write_jsonl(&profile.out_dir.join("history.jsonl"));
            return Err(e);
        }
    };
    let rec = history.snapshot();
    let verdict = check_all(&rec, &finals, profile.max_clock_offset_ms, liveness);
    let report = RunReport {
        ok: count(&rec, |o| matches!(o, Outcome::Ok(_))),
        failed: count(&rec, |o| matches!(o, Outcome::Fail { .. })),
        unknown: count(&rec, |o| matches!(o, Outcome::Unknown(_))),
        faults: injected,
        recoveries,
        longest_unavailable_ms: longest_unavailable(&rec),
        verdict,
        dir: profile.out_dir.clone(),
    };
    save(&profile.out_dir, &rec, &finals, &report)?;
    drop(hosts);
    Ok(report)
}

fn count(rec: &Recorded, f: impl Fn(&Outcome) -> bool) -> usize {
    rec.ops.iter().filter(|o| f(&o.outcome)).count()
}

/// The longest stretch (ms) between acknowledged writes.
fn longest_unavailable(rec: &Recorded) -> u64 {
    let mut done: Vec<u64> = rec
        .ops
        .iter()
        .filter(|o| !matches!(o.call, Call::Lookup { .. }) && matches!(o.outcome, Outcome::Ok(_)))
        .map(|o| o.complete_ns)
        .collect();
    done.sort_unstable();
    done.windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .max()
        .unwrap_or(0)
}

fn save(
    dir: &std::path::Path,
    rec: &Recorded,
    finals: &[NodeState],
    report: &RunReport,
) -> Result<(), String> {
    rec.write_jsonl(&dir.join("history.jsonl"))
        .map_err(|e| e.to_string())?;
    let f = serde_json::to_string_pretty(finals).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("final-states.json"), f).map_err(|e| e.to_string())?;
    let mut text = format!("{}\n\n", report.summary());
    text.push_str(&report.verdict.describe(&rec.ops));
    for (class, r) in &report.recoveries {
        text.push_str(&format!(
            "recovery after {}: {} ms{}\n",
            class.name(),
            r.ms,
            if r.ok { "" } else { " (FAILED)" }
        ));
    }
    std::fs::write(dir.join("report.txt"), text).map_err(|e| e.to_string())
}

/// Waits until every node applied the same index and nothing more was
/// applied for a while, then reads each node's leases, accounts and
/// certificates (`consistency=local`). Expiry and the account manager go
/// on after the clients stop (short leases and accounts run out), so the
/// reads count only if every node's applied index was the same before and
/// after all of them; until then, it waits for the cluster to go quiet.
async fn final_states(hosts: &Hosts) -> Result<Vec<NodeState>, String> {
    const QUIET: Duration = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        let before = applied_indexes(hosts).await;
        if before.len() != hosts.len() || before.iter().any(|a| *a != before[0]) {
            last = format!("applied indexes {before:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        tokio::time::sleep(QUIET).await;
        let quiet = applied_indexes(hosts).await;
        if quiet != before {
            last = format!("applied indexes moved from {before:?} to {quiet:?} while waiting");
            continue;
        }
        let mut out = Vec::new();
        for h in 1..=hosts.len() {
            out.push(node_state(hosts, h).await?);
        }
        let after = applied_indexes(hosts).await;
        if after == before {
            return Ok(out);
        }
        last = format!("applied indexes moved from {before:?} to {after:?} during the reads");
    }
    Err(format!("no stable final state to read: {last}"))
}

async fn applied_indexes(hosts: &Hosts) -> Vec<u64> {
    let mut applied = Vec::new();
    for h in 1..=hosts.len() {
        if let Some(v) = super::nemesis::cluster_view(hosts, h).await {
            applied.push(v["applied_index"].as_u64().unwrap_or(0));
        }
    }
    applied
}

async fn node_state(hosts: &Hosts, h: usize) -> Result<NodeState, String> {
    let api = hosts.api(h, Duration::from_secs(20));
    let read_wall_ms = wall_ms();
    let leases = list(&api, "/v1/leases")
        .await?
        .iter()
        .map(|l| LeaseRecord {
            id: str_of(l, "id"),
            name: str_of(l, "name"),
            account: l["account"].as_str().map(str::to_string),
            expires_at_ms: l["expires_at"]
                .as_str()
                .and_then(parse_rfc3339_ms)
                .unwrap_or(0),
            state: str_of(l, "state"),
        })
        .collect();
    let accounts = list(&api, "/v1/accounts")
        .await?
        .iter()
        .map(|a| AccountRecord {
            name: str_of(a, "name"),
            expires_at_ms: a["expires_at"].as_str().and_then(parse_rfc3339_ms),
            state: str_of(a, "state"),
        })
        .collect();
    let certs = list(&api, "/v1/pki/certs")
        .await?
        .iter()
        .map(|c| CertRecord {
            serial: str_of(c, "serial"),
            common_name: str_of(c, "common_name"),
            account: c["account"].as_str().map(str::to_string),
            state: str_of(c, "state"),
        })
        .collect();
    let mut state = NodeState {
        node: h,
        read_wall_ms,
        leases,
        accounts,
        certs,
    };
    state.leases.sort();
    state.accounts.sort();
    state.certs.sort();
    Ok(state)
}

fn str_of(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

/// Every item of a paginated list, read locally.
async fn list(api: &Api, path: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?consistency=local&limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&url).await?;
        if r.status != 200 {
            return Err(format!("GET {url}: {} {}", r.status, r.text));
        }
        items.extend(r.body["items"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(items),
        }
    }
}
