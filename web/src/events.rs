//! The node's recent cluster events: a bounded in-memory ring of what an
//! operator wants on a status page (leaders observed, membership changes,
//! seal and unseal, reloads, lifecycle phases, decommissions), each with
//! the time it was recorded here. Served at `GET /v1/sys/events`.
//!
//! Per node and not replicated: it says what *this* node saw, and starts
//! empty on every start. The ring keeps the newest [`CAPACITY`] events;
//! every event has a sequence number so a poller can ask only for newer
//! ones.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use keel_raft::clock::{Millis, now_ms, to_rfc3339};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::Audit;

/// How many events the ring keeps.
pub const CAPACITY: usize = 256;

/// What kind of event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// This node observed a new leader (or none) or a new term.
    Leader,
    /// The membership in force changed.
    Membership,
    /// This node was sealed.
    Seal,
    /// This node was unsealed.
    Unseal,
    /// A configuration reload was applied or rejected.
    Reload,
    /// The node's lifecycle phase changed.
    Lifecycle,
    /// A member was decommissioned (recorded by the node that ran it).
    Decommission,
}

impl EventKind {
    /// The kind's name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Leader => "leader",
            EventKind::Membership => "membership",
            EventKind::Seal => "seal",
            EventKind::Unseal => "unseal",
            EventKind::Reload => "reload",
            EventKind::Lifecycle => "lifecycle",
            EventKind::Decommission => "decommission",
        }
    }
}

/// Where an event came from, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An API request.
    Api,
    /// A signal to the process (SIGHUP, SIGTERM).
    Signal,
    /// A background manager.
    Manager,
    /// The node itself (what it observed of Raft, its own lifecycle).
    Node,
}

impl Source {
    /// The source's name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Signal => "signal",
            Source::Manager => "manager",
            Source::Node => "node",
        }
    }
}

/// One event as served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Increases by one per event recorded on this node since it started.
    pub seq: u64,
    /// When this node recorded it (RFC 3339).
    pub at: String,
    /// Its kind.
    pub kind: EventKind,
    /// What happened, for a human.
    pub message: String,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<(u64, Millis, EventKind, String)>,
}

/// The ring; written by the node, read by the API. Every event also goes
/// to the audit log.
#[derive(Debug)]
pub struct EventLog {
    ring: Mutex<Ring>,
    audit: Arc<Audit>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(Arc::new(Audit::disabled()))
    }
}

impl EventLog {
    /// An empty ring whose events are also written to `audit`.
    pub fn new(audit: Arc<Audit>) -> Self {
        EventLog {
            ring: Mutex::default(),
            audit,
        }
    }

    /// Records an event now, dropping the oldest past [`CAPACITY`].
    pub fn record(&self, kind: EventKind, source: Source, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(?kind, %message, "cluster event");
        self.audit.event(kind.as_str(), source.as_str(), &message);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.next_seq += 1;
        let seq = ring.next_seq;
        ring.events.push_back((seq, now_ms(), kind, message));
        while ring.events.len() > CAPACITY {
            ring.events.pop_front();
        }
    }

    /// Events with a sequence number above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.events
            .iter()
            .filter(|(seq, ..)| *seq > after)
            .map(|(seq, at, kind, message)| Event {
                seq: *seq,
                at: to_rfc3339(*at),
                kind: *kind,
                message: message.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_in_order() {
        let log = EventLog::default();
        for i in 0..(CAPACITY + 10) {
            log.record(EventKind::Leader, Source::Node, format!("event {i}"));
        }
        let all = log.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 11);
        assert_eq!(all.last().unwrap().seq, (CAPACITY + 10) as u64);
        assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        let newer = log.since((CAPACITY + 8) as u64);
        assert_eq!(newer.len(), 2);
        assert_eq!(newer[1].message, format!("event {}", CAPACITY + 9));
    }
}
