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
    components: Vec<(String, ComponentState, Millis)>,
}

/// The node's lifecycle, shared between the node (writer) and the API.
#[derive(Debug)]
pub struct LifecycleBoard {
    board: RwLock<Board>,
}

impl Default for LifecycleBoard {
    fn default() -> Self {
        LifecycleBoard {
            board: RwLock::new(Board {
                phase: Phase::Starting,
                components: Vec::new(),
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

    /// Sets a component's state, registering it on first use.
    pub fn set_component(&self, name: &str, state: ComponentState) {
        let mut board = self.board.write().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        match board.components.iter_mut().find(|(n, _, _)| n == name) {
            Some(entry) => {
                if entry.1 != state {
                    entry.1 = state;
                    entry.2 = now;
                }
            }
            None => board.components.push((name.to_string(), state, now)),
        }
    }

    /// A component's state, if registered.
    pub fn component(&self, name: &str) -> Option<ComponentState> {
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        board
            .components
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, _)| *s)
    }

    /// The served view.
    pub fn view(&self) -> LifecycleView {
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        LifecycleView {
            phase: board.phase,
            components: board
                .components
                .iter()
                .map(|(name, state, since)| ComponentView {
                    name: name.clone(),
                    state: *state,
                    since: to_rfc3339(*since),
                })
                .collect(),
        }
    }
}
