//! The in-memory transport: a whole cluster in one process, with faults.
//!
//! A [`MemoryNet`] maps peer addresses to in-process
//! [`ControlPlane`]s. A call goes through the same receiving half as one
//! over HTTP ([`ControlPlane::admit`], then `serve_peer` or
//! `serve_snapshot`), with the peer message limit applied, and refusals
//! come back as the same [`PeerCallError::Status`]. Between the two ends
//! the net injects faults drawn from one seeded random generator: a
//! request lost on the way, an answer lost on the way back (the request
//! was served: the sender cannot tell the two apart, as over a real
//! network), and a random delay each way, which reorders concurrent
//! messages. Links can be cut one way or both ([`MemoryNet::isolate`],
//! [`MemoryNet::partition`]) and healed.
//!
//! The served half runs as its own task, so a sender that gives up (its
//! timeout) does not cancel what the receiver already started, as a real
//! server would not. The same seed draws the same faults for the same
//! sequence of calls; a multi-threaded runtime may order calls
//! differently from run to run, so a seed names a fault mix and its first
//! draws, not a whole schedule.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{PeerBody, PeerCall, PeerCallError, Transport};
use crate::error::Error;
use crate::handle::ControlPlane;
use crate::wire::{PeerRefusal, PeerRpc};

/// The fault mix of a [`MemoryNet`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Probability that a request is lost before it is served.
    pub drop_request: f64,
    /// Probability that an answer is lost after the request was served.
    pub drop_answer: f64,
    /// Largest delay each way (drawn uniformly from zero to it).
    pub max_delay: Duration,
}

/// What the net did, for a test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Calls answered.
    pub delivered: u64,
    /// Requests lost on the way.
    pub requests_dropped: u64,
    /// Answers lost on the way back (the request was served).
    pub answers_dropped: u64,
    /// Calls refused because a link was cut or nothing listened.
    pub refused: u64,
    /// Snapshots delivered.
    pub snapshots: u64,
}

struct Net {
    nodes: HashMap<String, ControlPlane>,
    /// Directed links that are cut: (from, to).
    cut: HashSet<(String, String)>,
    faults: Faults,
    rng: StdRng,
    stats: NetStats,
}

/// What one call will suffer, drawn when it is sent.
struct Draw {
    there: Duration,
    back: Duration,
    lose_request: bool,
    lose_answer: bool,
}

/// A set of in-process nodes and the links between them.
#[derive(Clone)]
pub struct MemoryNet {
    seed: u64,
    net: Arc<Mutex<Net>>,
}

impl MemoryNet {
    /// A net whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        MemoryNet {
            seed,
            net: Arc::new(Mutex::new(Net {
                nodes: HashMap::new(),
                cut: HashSet::new(),
                faults,
                rng: StdRng::seed_from_u64(seed),
                stats: NetStats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The seed the faults are drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The transport of the node at `from`.
    pub fn transport(&self, from: &str) -> Arc<dyn Transport> {
        Arc::new(MemoryTransport {
            net: self.clone(),
            from: from.to_string(),
        })
    }

    /// Serves `node` at `addr` from now on.
    pub fn attach(&self, addr: &str, node: ControlPlane) {
        self.lock().nodes.insert(addr.to_string(), node);
    }

    /// Nothing serves at `addr` any more (the node stopped).
    pub fn detach(&self, addr: &str) {
        self.lock().nodes.remove(addr);
    }

    /// Replaces the fault mix.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Cuts every link between the groups `a` and `b`, both ways.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        let mut net = self.lock();
        for x in a {
            for y in b {
                net.cut.insert((x.to_string(), y.to_string()));
                net.cut.insert((y.to_string(), x.to_string()));
            }
        }
    }

    /// Cuts the one-way link from `from` to `to` (answers to calls the
    /// other way are lost too).
    pub fn cut(&self, from: &str, to: &str) {
        self.lock().cut.insert((from.to_string(), to.to_string()));
    }

    /// Cuts `addr` off from every node attached now.
    pub fn isolate(&self, addr: &str) {
        let others: Vec<String> = self
            .lock()
            .nodes
            .keys()
            .filter(|a| *a != addr)
            .cloned()
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.partition(&[addr], &others);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// What the net did so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    fn link_up(&self, from: &str, to: &str) -> bool {
        !self
            .lock()
            .cut
            .contains(&(from.to_string(), to.to_string()))
    }

    fn draw(&self) -> Draw {
        let mut net = self.lock();
        let faults = net.faults;
        let max = faults.max_delay.as_micros() as u64;
        let rng = &mut net.rng;
        let mut delay = || {
            Duration::from_micros(if max == 0 {
                0
            } else {
                rng.random_range(0..=max)
            })
        };
        let there = delay();
        let back = delay();
        Draw {
            there,
            back,
            lose_request: rng.random_bool(faults.drop_request.clamp(0.0, 1.0)),
            lose_answer: rng.random_bool(faults.drop_answer.clamp(0.0, 1.0)),
        }
    }

    fn count(&self, f: impl FnOnce(&mut NetStats)) {
        f(&mut self.lock().stats);
    }

    fn node(&self, addr: &str) -> Option<ControlPlane> {
        self.lock().nodes.get(addr).cloned()
    }

    async fn deliver(&self, from: &str, call: PeerCall) -> Result<Bytes, PeerCallError> {
        let to = call.addr.clone();
        let rpc = call.rpc;
        let draw = self.draw();
        tokio::time::sleep(draw.there).await;
        if !self.link_up(from, &to) {
            self.count(|s| s.refused += 1);
            return Err(PeerCallError::Connect(format!(
                "link {from} -> {to} is cut"
            )));
        }
        if draw.lose_request {
            self.count(|s| s.requests_dropped += 1);
            return Err(PeerCallError::Unreachable(format!(
                "request to {to} lost (seed {})",
                self.seed
            )));
        }
        let Some(node) = self.node(&to) else {
            self.count(|s| s.refused += 1);
            return Err(PeerCallError::Connect(format!("nothing listens at {to}")));
        };
        // Served as its own task: a sender that stops waiting does not
        // stop the receiver.
        let answer = tokio::spawn(serve(node, call))
            .await
            .map_err(|e| PeerCallError::Unreachable(format!("{to} failed serving: {e}")))?;
        tokio::time::sleep(draw.back).await;
        if draw.lose_answer || !self.link_up(&to, from) {
            self.count(|s| s.answers_dropped += 1);
            return Err(PeerCallError::Unreachable(format!(
                "answer from {to} lost (seed {})",
                self.seed
            )));
        }
        let snapshot = rpc == PeerRpc::Snapshot;
        self.count(|s| {
            s.delivered += 1;
            s.snapshots += u64::from(snapshot && answer.is_ok());
        });
        answer
    }
}

/// The receiving half, as the peer listener runs it.
async fn serve(node: ControlPlane, call: PeerCall) -> Result<Bytes, PeerCallError> {
    if call.rpc == PeerRpc::SealConfig {
        // In-memory nodes are unsealed with their storage; none asks.
        return Err(refused(Error::Internal(
            "the in-memory transport serves no seal configuration".into(),
        )));
    }
    if call.rpc == PeerRpc::Time {
        return crate::skew::probe::encoded_time_reply()
            .map(Bytes::from)
            .map_err(|e| refused(Error::Internal(e.to_string())));
    }
    node.admit(call.cluster.as_deref(), call.to, call.acked)
        .map_err(refused)?;
    let out = match call.body {
        PeerBody::Bytes(body) => {
            let limit = node.settings().max_peer_message_bytes;
            if body.len() > limit {
                return Err(PeerCallError::Status {
                    status: PeerRefusal::TooLarge.status(),
                    refusal: PeerRefusal::TooLarge,
                    body: format!("request body exceeds the limit of {limit} bytes"),
                });
            }
            node.serve_peer(call.rpc, &body, None).await
        }
        PeerBody::Stream(stream) => node.serve_snapshot(stream, None).await,
    };
    out.map(Bytes::from).map_err(refused)
}

fn refused(e: Error) -> PeerCallError {
    let refusal = PeerRefusal::answering(&e);
    PeerCallError::Status {
        status: refusal.status(),
        refusal,
        body: e.to_string(),
    }
}

/// One node's end of a [`MemoryNet`].
struct MemoryTransport {
    net: MemoryNet,
    from: String,
}

impl Transport for MemoryTransport {
    fn send(&self, call: PeerCall) -> BoxFuture<'static, Result<Bytes, PeerCallError>> {
        let net = self.net.clone();
        let from = self.from.clone();
        Box::pin(async move {
            let timeout = call.timeout;
            let to = call.addr.clone();
            tokio::time::timeout(timeout, net.deliver(&from, call))
                .await
                .unwrap_or_else(|_| {
                    Err(PeerCallError::Unreachable(format!(
                        "{to}: no answer within {timeout:?}"
                    )))
                })
        })
    }
}
