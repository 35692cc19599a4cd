//! The recorded history of a fault run: every client operation with its
//! invocation and completion (monotonic nanoseconds since the run began,
//! plus the harness's wall clock in ms, which no fault touches), its
//! outcome (`ok`, `fail` with a definite refusal, or `unknown`: the write
//! may or may not have happened), and every nemesis event.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// `POST /v1/leases` with an `Idempotency-Key`, retried with the same
    /// key while the outcome is unknown.
    Grant {
        /// Unique per logical grant (`j/<client>/<n>`).
        name: String,
        /// TTL in seconds.
        ttl_s: u64,
        /// Owning account.
        account: Option<String>,
    },
    /// `POST /v1/leases/{id}/renew`.
    Renew {
        /// Lease id.
        lease: String,
    },
    /// `DELETE /v1/leases/{id}`.
    Revoke {
        /// Lease id.
        lease: String,
    },
    /// `GET /v1/leases/{id}?consistency=..`.
    Lookup {
        /// Lease id.
        lease: String,
        /// `linearizable`, `leader` or `local`.
        consistency: String,
    },
    /// `PATCH /v1/accounts/{name}` moving `expires_at` (past: expire;
    /// future: renew).
    AccountExpiry {
        /// Account name.
        account: String,
        /// New `expires_at`, wall ms.
        expires_at_ms: i64,
    },
    /// `POST /v1/pki/issue` with an `Idempotency-Key`.
    CertIssue {
        /// Common name (unique per logical issue).
        common_name: String,
        /// Owning account.
        account: Option<String>,
    },
    /// `POST /v1/pki/certs/{serial}/revoke`.
    CertRevoke {
        /// Serial.
        serial: String,
    },
}

/// A lease (or certificate) as an answer showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Lease id or certificate serial.
    pub id: String,
    /// `state` field.
    pub state: String,
    /// `expires_at` (leases) or `not_after` (certificates), wall ms.
    pub expires_at_ms: i64,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged; what the answer showed (if it showed an object).
    Ok(Option<Seen>),
    /// Definitely refused (4xx, or a 503 that applied nothing).
    Fail {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
    },
    /// No definite answer: may or may not have happened.
    Unknown(String),
}

/// One client operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Index in the history.
    pub index: usize,
    /// The client (a logical process; one operation at a time).
    pub process: usize,
    /// The node it was first sent to.
    pub node: usize,
    /// What was asked.
    pub call: Call,
    /// Monotonic ns since the run began.
    pub invoke_ns: u64,
    /// Monotonic ns since the run began (`u64::MAX` until complete).
    pub complete_ns: u64,
    /// Harness wall clock at invocation (ms).
    pub invoke_wall_ms: i64,
    /// Harness wall clock at completion (ms).
    pub complete_wall_ms: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts made (retries with the same idempotency key).
    pub attempts: u32,
}

/// A nemesis event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Monotonic ns since the run began.
    pub at_ns: u64,
    /// `inject` or `heal`.
    pub phase: String,
    /// Fault class.
    pub class: String,
    /// What exactly.
    pub detail: String,
}

/// The shared recorder.
#[derive(Clone)]
pub struct History {
    start: Instant,
    start_wall_ms: i64,
    inner: Arc<Mutex<Recorded>>,
}

/// Everything recorded.
#[derive(Default, Serialize, Deserialize)]
pub struct Recorded {
    /// Client operations, in invocation order.
    pub ops: Vec<Op>,
    /// Nemesis events, in order.
    pub faults: Vec<FaultEvent>,
}

/// Wall-clock milliseconds now.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// A new, empty history starting now.
    pub fn new() -> Self {
        History {
            start: Instant::now(),
            start_wall_ms: wall_ms(),
            inner: Arc::new(Mutex::new(Recorded::default())),
        }
    }

    /// Monotonic ns since the start.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The harness wall clock derived from the monotonic clock (so a
    /// wall-clock step on the harness host cannot reorder the history).
    pub fn wall_of(&self, ns: u64) -> i64 {
        self.start_wall_ms + (ns / 1_000_000) as i64
    }

    /// Records an invocation; returns its index.
    pub fn invoke(&self, process: usize, node: usize, call: Call) -> usize {
        let now = self.now_ns();
        let mut r = self.inner.lock().expect("history lock");
        let index = r.ops.len();
        r.ops.push(Op {
            index,
            process,
            node,
            call,
            invoke_ns: now,
            complete_ns: u64::MAX,
            invoke_wall_ms: self.wall_of(now),
            complete_wall_ms: i64::MAX,
            outcome: Outcome::Unknown("never completed".into()),
            attempts: 0,
        });
        index
    }

    /// Records a completion.
    pub fn complete(&self, index: usize, outcome: Outcome, attempts: u32) {
        let now = self.now_ns();
        let wall = self.wall_of(now);
        let mut r = self.inner.lock().expect("history lock");
        let op = &mut r.ops[index];
        // An unknown outcome never completes: it may take effect at any
        // later point (the checkers treat its completion as +inf).
        if !matches!(outcome, Outcome::Unknown(_)) {
            op.complete_ns = now;
            op.complete_wall_ms = wall;
        }
        op.outcome = outcome;
        op.attempts = attempts;
    }

    /// Records a nemesis event.
    pub fn fault(&self, phase: &str, class: &str, detail: &str) {
        let at_ns = self.now_ns();
        self.inner
            .lock()
            .expect("history lock")
            .faults
            .push(FaultEvent {
                at_ns,
                phase: phase.into(),
                class: class.into(),
                detail: detail.into(),
            });
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("history lock").ops.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Recorded {
        let r = self.inner.lock().expect("history lock");
        Recorded {
            ops: r.ops.clone(),
            faults: r.faults.clone(),
        }
    }
}

impl Recorded {
    /// Writes the history as JSON lines (one op or fault per line).
    pub fn write_jsonl(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for op in &self.ops {
            writeln!(f, "{}", serde_json::to_string(op).expect("op json"))?;
        }
        for ev in &self.faults {
            writeln!(f, "{}", serde_json::to_string(ev).expect("fault json"))?;
        }
        f.flush()
    }
}
