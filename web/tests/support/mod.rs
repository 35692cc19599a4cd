//! In-process nodes for router tests: a real control plane on RocksDB in a
//! temporary directory, installed in a real [`Shared`], and the real API
//! router, driven with `tower::ServiceExt::oneshot`. [`Node::start`] gives
//! a single voter; [`Node::cluster`] gives voters joined by an in-memory
//! transport (`keel_raft::transport::MemoryNet`), so a follower forwards
//! writes to the leader as it would over the network. No process, no
//! socket: what these tests check is the router, the middleware, the
//! handlers and the domain behind them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use keel_raft::command::{Command, Request as Proposed};
use keel_raft::domain::lease_batch::GrantRequest;
use keel_raft::pki::{self, IssueSpec};
use keel_raft::settings::RaftSettings;
use keel_raft::transport::{ClusterSecret, Faults, MemoryNet, PeerClient};
use keel_raft::{Caller, ControlPlane, Member, Storage};
use keel_web::auth::Auth;
use keel_web::{ApiLimits, Shared};
use serde_json::Value;
use tempfile::TempDir;

/// The admin token of the in-process node.
pub const TOKEN: &str = "in-process-admin-token";

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// keel's error body: `{"error": {"code", "message"}}`; its code.
    pub fn error_code(&self) -> Option<&str> {
        let error = self.json.get("error")?;
        error.get("message")?.as_str()?;
        error.get("code")?.as_str()
    }

    /// Whether the body is keel's error shape in full: a snake_case code
    /// and a message that is not empty.
    pub fn is_error_body(&self) -> bool {
        let message = self.json["error"]["message"].as_str();
        self.error_code().is_some_and(|c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        }) && message.is_some_and(|m| !m.is_empty())
    }
}

/// Collects a wrong answer instead of stopping at the first: `answer` must
/// have `status`, keel's error body and the error `code`.
pub fn check(wrong: &mut Vec<String>, what: &str, answer: &Answer, status: u16, code: &str) {
    if answer.status != status || !answer.is_error_body() || answer.error_code() != Some(code) {
        wrong.push(format!(
            "{what}: expected {status} {code}, got {} {:.300}",
            answer.status, answer.text
        ));
    }
}

/// As [`check`], for a refusal whose status is promised but not its code:
/// `answer` must have `status` and keel's error body.
pub fn check_status(wrong: &mut Vec<String>, what: &str, answer: &Answer, status: u16) {
    if answer.status != status || !answer.is_error_body() {
        wrong.push(format!(
            "{what}: expected {status} with the error body, got {} {:.300}",
            answer.status, answer.text
        ));
    }
}

/// A request carrying the admin token, to finish with headers and a body
/// of one's own and send with [`Node::send_request`].
pub fn admin_request(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

/// A node with a lease, an account, a certificate and a token to guard.
pub struct Node {
    _dir: TempDir,
    storage: Option<Storage>,
    /// The net this node serves on, and its address there.
    net: MemoryNet,
    addr: String,
    /// The control plane.
    pub cp: ControlPlane,
    /// The web state.
    pub shared: Arc<Shared>,
    router: Router,
    /// A lease's id (16 hex digits), named `keep/me`.
    pub lease: String,
    /// An account's name.
    pub account: String,
    /// A certificate's serial.
    pub serial: String,
    /// A tenant token's accessor.
    pub accessor: String,
}

impl Node {
    /// Starts a single-voter node and creates what the tests guard.
    pub async fn start() -> Node {
        Self::cluster(1).await.pop().expect("one node")
    }

    /// Starts `n` voters on one in-memory net, waits for a leader they all
    /// agree on, creates what the tests guard through it, and waits until
    /// every node applied it. The first node returned leads.
    pub async fn cluster(n: u64) -> Vec<Node> {
        // reqwest is built without a TLS provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let net = MemoryNet::new(0, Faults::default());
        let mut started = Vec::new();
        for name in 1..=n {
            let dir = TempDir::new().expect("temp dir");
            let storage = Storage::open(dir.path()).expect("storage");
            storage
                .keeper()
                .unseal_with_file(b"in-process test clusters share this key file")
                .expect("unseals");
            let addr = format!("node-{name}:7401");
            let peers = PeerClient::over(net.transport(&addr), storage.identity().clone());
            let member = Member {
                api_addr: format!("node-{name}:7400"),
                peer_addr: addr.clone(),
            };
            let clock = keel_raft::skew::ClockMonitor::new(Duration::from_millis(500));
            // Every node runs on this process's clock: it agrees with itself.
            clock.assess(&[], true);
            let cp =
                ControlPlane::start(RaftSettings::for_node(name), &storage, peers, member, clock)
                    .await
                    .expect("raft starts");
            net.attach(&addr, cp.clone());
            started.push((dir, storage, addr, cp));
        }
        let members: BTreeMap<_, _> = started
            .iter()
            .map(|(_, _, _, cp)| (cp.node_id(), cp.advertise().clone()))
            .collect();
        started[0].3.initialize(members).await.expect("initialize");
        let leader = agreed_leader(started.iter().map(|s| &s.3)).await;
        started.rotate_left(leader);
        let cp = started[0].3.clone();
        let fixtures = Fixtures::create(&cp).await;
        let last = cp.status().last_log_index;
        for (_, _, _, node) in &started {
            node.wait_for(Duration::from_secs(10), |s| s.applied >= last)
                .await
                .expect("every node applies the fixtures");
        }
        started
            .into_iter()
            .map(|(dir, storage, addr, cp)| {
                let auth = Auth::new(
                    vec![TOKEN.to_string()],
                    ClusterSecret::new("in-process-cluster-secret"),
                );
                let shared = Arc::new(Shared::new(cp.name(), auth, ApiLimits::default()));
                shared.install_control_plane(cp.clone());
                let router = keel_web::api_router(shared.clone());
                Node {
                    _dir: dir,
                    storage: Some(storage),
                    net: net.clone(),
                    addr,
                    lease: fixtures.lease.clone(),
                    serial: fixtures.serial.clone(),
                    accessor: fixtures.accessor.clone(),
                    account: fixtures.account.clone(),
                    cp,
                    shared,
                    router,
                }
            })
            .collect()
    }

    /// The replicated state as snapshot bytes: equal bytes, equal state.
    pub fn state(&self) -> Vec<u8> {
        let state = self.cp.local(|s| s.clone());
        keel_raft::store::encode_state(&state).expect("encodes")
    }

    /// What bad input must not change either but the replicated state
    /// does not hold: the membership in force, the leader, whether this
    /// node is sealed. Equal text, equal view.
    pub fn cluster_view(&self) -> String {
        let status = self.cp.status();
        format!(
            "leader {:?}, voters {:?}, joint {}, nodes {:?}, sealed {}",
            status.leader,
            status.voters,
            status.joint,
            status.nodes,
            self.shared.sealed()
        )
    }

    /// Creates account `name` with at most `max_leases` leases.
    pub async fn create_account(&self, name: &str, max_leases: Option<u64>) {
        use keel_raft::domain::account::{Account, LimitsPatch, Patch};
        let limits = LimitsPatch {
            max_leases: max_leases.map_or(Patch::Keep, Patch::Set),
            ..Default::default()
        };
        let _: keel_raft::Written<Account> = self
            .cp
            .apply(
                Command::CreateAccount {
                    name: name.to_string(),
                    expires_at: None,
                    limits,
                },
                &Caller::system(),
            )
            .await
            .expect("an account");
    }

    /// Sends a request through the router.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("a request");
        self.send_request(request).await
    }

    /// Sends a request built whole by the caller (its own headers and
    /// body, e.g. a streamed one) through the router.
    pub async fn send_request(&self, request: Request<Body>) -> Answer {
        let response = tower::ServiceExt::oneshot(self.router.clone(), request)
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Stops Raft and closes the database.
    pub async fn stop(self) {
        let Node {
            cp,
            shared,
            router,
            storage,
            net,
            addr,
            ..
        } = self;
        net.detach(&addr);
        let _ = shared.retire();
        drop((router, shared));
        cp.shutdown().await.expect("raft stops");
        drop(cp);
        if let Some(storage) = storage {
            let handles = storage.wait_sole_handle(Duration::from_secs(5)).await;
            assert_eq!(handles, 1, "the database is still held after stop");
        }
    }
}

/// Waits until every node applied everything the first (the leader) holds.
pub async fn settled(nodes: &[Node]) {
    let last = nodes[0].cp.status().last_log_index;
    for node in nodes {
        node.cp
            .wait_for(Duration::from_secs(10), |s| s.applied >= last)
            .await
            .expect("every node catches up");
    }
}

/// The index of the node every node agrees leads.
async fn agreed_leader<'a>(nodes: impl Iterator<Item = &'a ControlPlane> + Clone) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let leaders: Vec<_> = nodes.clone().map(|cp| cp.status().leader).collect();
        if let Some(Some(id)) = leaders.first()
            && leaders.iter().all(|l| *l == Some(*id))
            && let Some(i) = nodes
                .clone()
                .position(|cp| cp.node_id() == *id && cp.is_leader())
        {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreed leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What every node's tests guard: a lease, an account, a certificate and
/// a tenant token, created through the leader with the cluster id and CA.
struct Fixtures {
    lease: String,
    account: String,
    serial: String,
    accessor: String,
}

impl Fixtures {
    async fn create(cp: &ControlPlane) -> Fixtures {
        let system = Caller::system();
        let _: keel_raft::Written<String> = cp
            .apply(
                Command::InitCluster {
                    cluster_id: "in-process".into(),
                },
                &system,
            )
            .await
            .expect("cluster id");
        let ca = pki::create_ca(&Default::default(), keel_raft::clock::now_ms()).expect("a CA");
        let _: keel_raft::Written<()> = cp
            .apply(Command::InitCa { ca }, &system)
            .await
            .expect("the CA");
        let lease = cp
            .grant_lease(
                GrantRequest {
                    ttl_ms: 3_600_000,
                    max_ttl_ms: None,
                    name: Some("keep/me".into()),
                    account: None,
                    metadata: BTreeMap::from([("a".into(), "b".into())]),
                },
                &system,
            )
            .await
            .expect("a lease");
        let account = "acme".to_string();
        let _: keel_raft::Written<keel_raft::domain::account::Account> = cp
            .apply(
                Command::CreateAccount {
                    name: account.clone(),
                    expires_at: None,
                    limits: Default::default(),
                },
                &system,
            )
            .await
            .expect("an account");
        let cert = cp
            .issue_certificate(
                IssueSpec {
                    common_name: "svc.example.test".into(),
                    dns_names: vec![],
                    ip_addresses: vec![],
                    ttl_ms: 86_400_000,
                    account: None,
                },
                &system,
            )
            .await
            .expect("a certificate");
        let token: keel_raft::Written<keel_raft::domain::token::Token> = cp
            .run(
                Proposed::CreateToken {
                    role: keel_raft::domain::token::Role::Tenant,
                    account: Some(account.clone()),
                    name: None,
                    ttl_ms: 3_600_000,
                    max_ttl_ms: None,
                    created_by: "root".into(),
                },
                &system,
            )
            .await
            .expect("a token");
        Fixtures {
            lease: keel_raft::domain::lease::format_id(lease.lease.id),
            serial: cert.value.cert.serial.clone(),
            accessor: token.value.accessor.clone(),
            account,
        }
    }
}
