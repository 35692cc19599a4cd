//! The clients of a fault run: at least two per node, each one operation
//! at a time, each recording every invocation and completion.
//!
//! Operations: lease grant (with an `Idempotency-Key`, retried with the
//! same key on other nodes while the outcome is unknown), renew, revoke,
//! lookup at each consistency level, account expiry and renewal, and
//! certificate issue (idempotent, like grants) and revoke. Writes answered
//! with a 5xx or not answered at all are `unknown`: the write may have
//! applied. A 4xx is a definite refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::{Api, Reply};

use super::history::{Call, History, Outcome, Seen, wall_ms};

/// Accounts the workload owns leases and certificates in.
pub const ACCOUNTS: [&str; 3] = ["acct-a", "acct-b", "acct-c"];
/// Requests give up after this (a lost answer is then `unknown`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
/// Lease ids and serials the clients share.
const POOL: usize = 512;

/// What the clients share.
pub struct Workload {
    /// The recorder.
    pub history: History,
    /// One client per node and API address.
    apis: Vec<Api>,
    /// Granted leases and their latest known deadline (wall ms).
    leases: Mutex<Vec<(String, i64)>>,
    serials: Mutex<Vec<(String, i64)>>,
    stop: AtomicBool,
}

impl Workload {
    /// Clients of `apis` (node `i + 1` is `apis[i]`).
    pub fn new(history: History, apis: Vec<Api>) -> Arc<Workload> {
        Arc::new(Workload {
            history,
            apis,
            leases: Mutex::new(Vec::new()),
            serials: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    /// Creates the workload's accounts (active for an hour).
    pub async fn setup(&self) -> Result<(), String> {
        for a in ACCOUNTS {
            let body = json!({"name": a, "expires_at": crate::rfc3339_in(3600)});
            let r = self.apis[0].post("/v1/accounts", &body).await?;
            if r.status != 201 && r.status != 409 {
                return Err(format!("create account {a}: {} {}", r.status, r.text));
            }
        }
        Ok(())
    }

    /// Starts `per_node` clients per node; they run until [`Self::stop`].
    pub fn spawn_clients(
        self: &Arc<Self>,
        per_node: usize,
        seed: u64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for node in 0..self.apis.len() {
            for k in 0..per_node {
                let process = node * per_node + k;
                let w = self.clone();
                let rng = StdRng::seed_from_u64(seed ^ ((process as u64 + 1) * 0x9E37_79B9));
                tasks.push(tokio::spawn(
                    async move { w.client(process, node, rng).await },
                ));
            }
        }
        tasks
    }

    /// Tells the clients to finish their current operation and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    async fn client(&self, process: usize, home: usize, mut rng: StdRng) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            // Mostly the client's own node; sometimes another, so every
            // node sees writes forwarded and reads of every level.
            let node = if rng.random_bool(0.8) {
                home
            } else {
                rng.random_range(0..self.apis.len())
            };
            let roll = rng.random_range(0..100);
            match roll {
                0..=24 => self.grant(process, node, n, &mut rng).await,
                25..=47 => self.renew(process, node, &mut rng).await,
                48..=79 => self.lookup(process, node, &mut rng).await,
                80..=83 => self.revoke(process, node, &mut rng).await,
                84..=88 => self.account_expiry(process, node, &mut rng).await,
                89..=95 => self.issue(process, node, n, &mut rng).await,
                _ => self.revoke_cert(process, node, &mut rng).await,
            }
        }
    }

    /// Half the time any known id; half the time the one whose deadline
    /// is nearest a moment within a second of now, so renewals and reads
    /// race expiry as often as they can.
    async fn pick(pool: &Mutex<Vec<(String, i64)>>, rng: &mut StdRng) -> Option<String> {
        let p = pool.lock().await;
        if p.is_empty() {
            return None;
        }
        if rng.random_bool(0.5) {
            return Some(p[rng.random_range(0..p.len())].0.clone());
        }
        let target = wall_ms() + rng.random_range(-1_000..=1_000);
        p.iter()
            .min_by_key(|(_, d)| (d - target).abs())
            .map(|(id, _)| id.clone())
    }

    /// Adds or updates an id's deadline; beyond [`POOL`] ids, forgets the
    /// one whose deadline passed longest ago (or the oldest).
    async fn remember(pool: &Mutex<Vec<(String, i64)>>, id: String, deadline: i64) {
        let mut p = pool.lock().await;
        match p.iter_mut().find(|(i, _)| *i == id) {
            Some(entry) => entry.1 = entry.1.max(deadline),
            None => p.push((id, deadline)),
        }
        if p.len() > POOL {
            let victim = p
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, d))| *d)
                .map(|(i, _)| i)
                .filter(|&i| p[i].1 < wall_ms() - 10_000)
                .unwrap_or(0);
            p.remove(victim);
        }
    }

    async fn grant(&self, process: usize, node: usize, n: u64, rng: &mut StdRng) {
        let name = format!("j/{process}/{n}");
        // Half long-lived (they must survive every fault, and outlive the
        // longest run, so the cluster goes quiet once the clients stop),
        // half short (they expire during the run, exercising expiry under
        // faults).
        let ttl_s = if rng.random_bool(0.5) {
            3600
        } else {
            rng.random_range(3..=12)
        };
        let account = rng
            .random_bool(0.3)
            .then(|| ACCOUNTS[rng.random_range(0..ACCOUNTS.len())].to_string());
        let mut body = json!({"ttl": ttl_s, "name": name});
        if let Some(a) = &account {
            body["account"] = json!(a);
        }
        let call = Call::Grant {
            name: name.clone(),
            ttl_s,
            account,
        };
        let outcome = self
            .idempotent(process, node, call, "/v1/leases", &body, &name, "id", rng)
            .await;
        if let Outcome::Ok(Some(seen)) = outcome {
            Self::remember(&self.leases, seen.id, seen.expires_at_ms).await;
        }
    }

    async fn issue(&self, process: usize, node: usize, n: u64, rng: &mut StdRng) {
        let common_name = format!("c-{process}-{n}.jepsen.test");
        let account = rng
            .random_bool(0.3)
            .then(|| ACCOUNTS[rng.random_range(0..ACCOUNTS.len())].to_string());
        let mut body = json!({"common_name": common_name, "ttl": "2h"});
        if let Some(a) = &account {
            body["account"] = json!(a);
        }
        let call = Call::CertIssue {
            common_name: common_name.clone(),
            account,
        };
        let key = format!("issue-{common_name}");
        let outcome = self
            .idempotent(
                process,
                node,
                call,
                "/v1/pki/issue",
                &body,
                &key,
                "serial",
                rng,
            )
            .await;
        if let Outcome::Ok(Some(seen)) = outcome {
            Self::remember(&self.serials, seen.id, seen.expires_at_ms).await;
        }
    }

    /// A write with an idempotency key: retried (up to three attempts, on
    /// random nodes) while its outcome is unknown.
    #[allow(clippy::too_many_arguments)]
    async fn idempotent(
        &self,
        process: usize,
        node: usize,
        call: Call,
        path: &str,
        body: &Value,
        key: &str,
        id_field: &str,
        rng: &mut StdRng,
    ) -> Outcome {
        let index = self.history.invoke(process, node + 1, call);
        let bytes = body.to_string().into_bytes();
        let mut target = node;
        let mut outcome = Outcome::Unknown("not sent".into());
        let mut attempts = 0;
        let mut any_unknown = false;
        while attempts < 3 {
            attempts += 1;
            let r = self.apis[target]
                .send_raw(
                    "POST",
                    path,
                    Some(bytes.clone()),
                    &[("idempotency-key", key)],
                )
                .await;
            match write_outcome(r, id_field) {
                Outcome::Unknown(why) => {
                    any_unknown = true;
                    outcome = Outcome::Unknown(why);
                }
                // A definite refusal after an unknown attempt does not prove
                // the first attempt did nothing (it may still commit).
                Outcome::Fail { status, code } if any_unknown => {
                    outcome = Outcome::Unknown(format!("{status} {code} after an unknown attempt"));
                    break;
                }
                settled => {
                    outcome = settled;
                    break;
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..300))).await;
            target = rng.random_range(0..self.apis.len());
        }
        self.history.complete(index, outcome.clone(), attempts);
        outcome
    }

    async fn renew(&self, process: usize, node: usize, rng: &mut StdRng) {
        let Some(lease) = Self::pick(&self.leases, rng).await else {
            return;
        };
        let index = self.history.invoke(
            process,
            node + 1,
            Call::Renew {
                lease: lease.clone(),
            },
        );
        let r = self.apis[node]
            .post(&format!("/v1/leases/{lease}/renew"), &json!({}))
            .await;
        let outcome = write_outcome(r, "id");
        if let Outcome::Ok(Some(seen)) = &outcome {
            Self::remember(&self.leases, seen.id.clone(), seen.expires_at_ms).await;
        }
        self.history.complete(index, outcome, 1);
    }

    async fn revoke(&self, process: usize, node: usize, rng: &mut StdRng) {
        let Some(lease) = Self::pick(&self.leases, rng).await else {
            return;
        };
        let index = self.history.invoke(
            process,
            node + 1,
            Call::Revoke {
                lease: lease.clone(),
            },
        );
        let r = self.apis[node].delete(&format!("/v1/leases/{lease}")).await;
        self.history.complete(index, write_outcome(r, "id"), 1);
    }

    async fn lookup(&self, process: usize, node: usize, rng: &mut StdRng) {
        let Some(lease) = Self::pick(&self.leases, rng).await else {
            return;
        };
        let consistency = ["linearizable", "leader", "local"][rng.random_range(0..3)];
        let index = self.history.invoke(
            process,
            node + 1,
            Call::Lookup {
                lease: lease.clone(),
                consistency: consistency.into(),
            },
        );
        let r = self.apis[node]
            .get(&format!("/v1/leases/{lease}?consistency={consistency}"))
            .await;
        let outcome = match r {
            Err(e) => Outcome::Unknown(e),
            Ok(r) if r.status == 200 => Outcome::Ok(seen(&r.body, "id", "expires_at")),
            Ok(r) => Outcome::Fail {
                status: r.status,
                code: r.code().to_string(),
            },
        };
        self.history.complete(index, outcome, 1);
    }

    async fn account_expiry(&self, process: usize, node: usize, rng: &mut StdRng) {
        let account = ACCOUNTS[rng.random_range(0..ACCOUNTS.len())].to_string();
        // Mostly renewals: accounts spend most of the run active.
        let secs = if rng.random_bool(0.4) { -60 } else { 3600 };
        let expires_at_ms = (wall_ms() / 1000 + secs) * 1000;
        let index = self.history.invoke(
            process,
            node + 1,
            Call::AccountExpiry {
                account: account.clone(),
                expires_at_ms,
            },
        );
        let body = json!({"expires_at": crate::rfc3339(expires_at_ms / 1000)});
        let r = self.apis[node]
            .patch(&format!("/v1/accounts/{account}"), &body)
            .await;
        let outcome = match write_outcome(r, "name") {
            Outcome::Ok(_) => Outcome::Ok(None),
            other => other,
        };
        self.history.complete(index, outcome, 1);
    }

    async fn revoke_cert(&self, process: usize, node: usize, rng: &mut StdRng) {
        let Some(serial) = Self::pick(&self.serials, rng).await else {
            return;
        };
        let index = self.history.invoke(
            process,
            node + 1,
            Call::CertRevoke {
                serial: serial.clone(),
            },
        );
        let r = self.apis[node]
            .post(
                &format!("/v1/pki/certs/{serial}/revoke"),
                &json!({"reason": "key_compromise"}),
            )
            .await;
        self.history.complete(index, write_outcome(r, "serial"), 1);
    }
}

/// The outcome of a write: 2xx ok, 4xx a definite refusal, anything else
/// (5xx, no answer) unknown. A replayed certificate issue whose key is
/// gone (409 `private_key_unavailable`) did apply.
fn write_outcome(r: Result<Reply, String>, id_field: &str) -> Outcome {
    match r {
        Err(e) => Outcome::Unknown(e),
        Ok(r) if (200..300).contains(&r.status) => {
            let expiry = if id_field == "serial" {
                "not_after"
            } else {
                "expires_at"
            };
            Outcome::Ok(seen(&r.body, id_field, expiry))
        }
        Ok(r) if r.code() == "private_key_unavailable" => Outcome::Ok(None),
        Ok(r) if (400..500).contains(&r.status) => Outcome::Fail {
            status: r.status,
            code: r.code().to_string(),
        },
        Ok(r) => Outcome::Unknown(format!("{} {}", r.status, r.code())),
    }
}

/// The object an answer shows, if it shows one.
fn seen(body: &Value, id_field: &str, expiry_field: &str) -> Option<Seen> {
    Some(Seen {
        id: body[id_field].as_str()?.to_string(),
        state: body["state"].as_str().unwrap_or("").to_string(),
        expires_at_ms: body[expiry_field]
            .as_str()
            .and_then(parse_rfc3339_ms)
            .unwrap_or(0),
    })
}

/// Parses keel's RFC 3339 timestamps to Unix ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}
