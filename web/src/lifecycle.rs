//! The lifecycle board: the node's phase and each component's state, as
//! served at `/v1/sys/lifecycle`. The node writes it as it starts and
//! stops components; the web layer only reads it.

use std::sync::RwLock;

use keel_raft::clock::{Millis, now_ms, to_rfc3339};
use serde::Serialize;
use utoipa::ToSchema;

/// The node's overall phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Starting up; not yet ready.
    Starting,
    /// Every start phase passed.
    Ready,
    /// Sealed: no keys in memory, Raft not running, waiting to be unsealed.
    Sealed,
    /// Stopping: refusing new work, finishing in-flight work.
    Draining,
    /// Stopped.
    Stopped,
}

/// One component's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Registered, not started.
    Pending,
    /// Starting.
    Starting,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped (and awaited).
    Stopped,
    /// Failed to start or stopped with an error.
    Failed,
}

/// The parts of a node, in the order they start; they stop in reverse,
/// except that the listeners outlive Raft's managers and drain before Raft
/// stops (in-flight requests need it), as `node/src/lifecycle/stop.rs`
/// explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The configuration, read and checked.
    Config,
    /// The data directory and RocksDB.
    Storage,
    /// The peer (Raft transport) listener: up before Raft (lesson 5).
    PeerListener,
    /// The API listener.
    ApiListener,
    /// The clock prober measuring peers' offsets.
    Clock,
    /// openraft.
    Raft,
    /// Cluster formation: bootstrap or join.
    Cluster,
    /// The leader-only and every-node managers.
    Managers,
}

impl Component {
    /// Every component, in start order.
    pub const ALL: [Component; 8] = [
        Component::Config,
        Component::Storage,
        Component::PeerListener,
        Component::ApiListener,
        Component::Clock,
        Component::Raft,
        Component::Cluster,
        Component::Managers,
    ];

    /// Its name at `/v1/sys/lifecycle` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Component::Config => "config",
            Component::Storage => "storage",
            Component::PeerListener => "peer-listener",
            Component::ApiListener => "api-listener",
            Component::Clock => "clock",
            Component::Raft => "raft",
            Component::Cluster => "cluster",
            Component::Managers => "managers",
        }
    }
}

/// A component as served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentView {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: ComponentState,
    /// When it entered that state (RFC 3339).
    pub since: String,
}

/// The lifecycle as served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LifecycleView {
    /// The node's phase.
    pub phase: Phase,
    /// Components in start order.
    pub components: Vec<ComponentView>,
}

#[derive(Debug)]
struct Board {
    phase: Phase,
    components: Vec<(Component, ComponentState, Millis)>,
}

/// The node's lifecycle, shared between the node (writer) and the API.
#[derive(Debug)]
pub struct LifecycleBoard {
    board: RwLock<Board>,
}

impl Default for LifecycleBoard {
    /// Every component registered as pending, in start order.
    fn default() -> Self {
        let now = now_ms();
        LifecycleBoard {
            board: RwLock::new(Board {
                phase: Phase::Starting,
                components: Component::ALL
                    .iter()
                    .map(|c| (*c, ComponentState::Pending, now))
                    .collect(),
            }),
        }
    }
}

impl LifecycleBoard {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.board.read().unwrap_or_else(|e| e.into_inner()).phase
    }

    /// Moves to a phase.
    pub fn set_phase(&self, phase: Phase) {
        self.board.write().unwrap_or_else(|e| e.into_inner()).phase = phase;
    }

    /// Sets a component's state.
    pub fn set_component(&self, component: Component, state: ComponentState) {
        let mut board = self.board.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = board
            .components
            .iter_mut()
            .find(|(c, _, _)| *c == component)
            && entry.1 != state
        {
            entry.1 = state;
            entry.2 = now_ms();
        }
    }

    /// A component's state.
    pub fn component(&self, component: Component) -> ComponentState {
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        board
            .components
            .iter()
            .find(|(c, _, _)| *c == component)
            .map_or(ComponentState::Pending, |(_, s, _)| *s)
    }

    /// The served view.
    pub fn view(&self) -> LifecycleView {
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        LifecycleView {
            phase: board.phase,
            components: board
                .components
                .iter()
                .map(|(component, state, since)| ComponentView {
                    name: component.name().to_string(),
                    state: *state,
                    since: to_rfc3339(*since),
                })
                .collect(),
        }
    }
}
