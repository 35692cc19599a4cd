//! The Raft observer: records what this node sees of its cluster change
//! (a new leader or term, a new membership) in the node's recent events
//! (`GET /v1/sys/events`), with the time it saw it. Runs from Raft's start
//! until stop, on every node; it only reads the control plane's status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use keel_raft::{ControlPlane, NodeId, RaftStatus, name_of};
use keel_web::Shared;
use keel_web::events::{EventKind, Source};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the observer compares between two statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    leader: Option<NodeId>,
    term: u64,
    voters: BTreeSet<NodeId>,
    members: BTreeSet<NodeId>,
}

impl Seen {
    fn of(s: &RaftStatus) -> Self {
        Seen {
            leader: s.leader,
            term: s.term,
            voters: s.voters.clone(),
            members: s.nodes.keys().copied().collect(),
        }
    }
}

fn names(ids: impl Iterator<Item = NodeId>) -> String {
    let names: Vec<String> = ids.map(|id| name_of(id).to_string()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The running observer.
pub struct RaftObserver {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RaftObserver {
    /// Starts observing `cp`, recording into `shared.events`.
    pub fn start(cp: ControlPlane, shared: Arc<Shared>) -> Self {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Option<Seen> = None;
            loop {
                let now = Seen::of(&cp.status());
                record(&shared, seen.as_ref(), &now);
                let last = now.clone();
                seen = Some(now);
                let changed = cp.wait_for_change(Duration::from_secs(60), |s| Seen::of(s) != last);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = changed => match r {
                        Ok(_) => {}
                        Err(_) if cp.is_stopping() => return,
                        // A quiet minute, or Raft's metrics gone: look
                        // again shortly, never in a tight loop.
                        Err(_) => tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        },
                    }
                }
            }
        });
        RaftObserver { stop, task }
    }

    /// Stops it and waits for its task.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "raft observer failed");
        }
    }
}

fn record(shared: &Shared, before: Option<&Seen>, now: &Seen) {
    let events = &shared.events;
    if before.is_none_or(|b| b.leader != now.leader || b.term != now.term) {
        let message = match now.leader {
            Some(l) => format!("node {} leads in term {}", name_of(l), now.term),
            None => format!("no leader known in term {}", now.term),
        };
        events.record(EventKind::Leader, Source::Node, message);
    }
    if !now.members.is_empty()
        && before.is_none_or(|b| b.voters != now.voters || b.members != now.members)
    {
        let learners = now.members.difference(&now.voters).copied();
        events.record(
            EventKind::Membership,
            Source::Node,
            format!(
                "membership: voters {}; learners {}",
                names(now.voters.iter().copied()),
                names(learners)
            ),
        );
    }
}
