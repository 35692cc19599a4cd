//! Which log index a task's writes became, for whoever wraps the task: the
//! API's audit records "for writes, the Raft log index it became" without
//! every handler passing it along. A task-local, so concurrent requests
//! never see each other's writes; outside [`trace_writes`] recording is a
//! no-op.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static WRITTEN: Cell<Option<u64>>;
}

/// Runs `f` and returns its output with the highest log index a write it
/// made through [`super::ControlPlane::write`] became (`None`: no write,
/// or only refused or replayed ones).
pub async fn trace_writes<F: Future>(f: F) -> (F::Output, Option<u64>) {
    WRITTEN
        .scope(Cell::new(None), async move {
            let out = f.await;
            (out, WRITTEN.with(Cell::get))
        })
        .await
}

/// Notes that a write of the current task became entry `index`.
pub(crate) fn record(index: u64) {
    let _ = WRITTEN.try_with(|c| c.set(Some(c.get().map_or(index, |i| i.max(index)))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trace_sees_only_its_own_task_and_keeps_the_highest_index() {
        let (_, none) = trace_writes(async {}).await;
        assert_eq!(none, None);
        let (out, seen) = trace_writes(async {
            record(7);
            record(5);
            let (_, inner) = trace_writes(async { record(9) }).await;
            assert_eq!(inner, Some(9));
            "done"
        })
        .await;
        assert_eq!((out, seen), ("done", Some(7)));
        // Outside any trace, recording does nothing (and does not panic).
        record(3);
    }
}
