//! The node lifecycle: the start checklist in [`start`], the stop sequence
//! in [`stop`], and the pieces they use.

pub mod barrier;
pub mod bootstrap;
mod listener;
pub mod start;
pub mod stop;

pub use listener::RunningListener;
