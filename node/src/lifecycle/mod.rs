//! The node lifecycle: the start checklist in [`start`], the stop sequence
//! in [`stop`], and the pieces they use.

pub mod barrier;
pub mod bootstrap;
mod census;
mod listener;
pub mod observe;
mod open;
pub mod retire;
pub mod seal;
mod settle;
pub mod start;
pub mod stop;
mod tls_watch;
mod transport;

pub use listener::RunningListener;
pub use tls_watch::TlsWatcher;
