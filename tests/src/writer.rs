//! A background writer for tests that change a cluster under load: it
//! grants leases through the given nodes in turn, retrying a 503 with the
//! same idempotency key, and reports every acknowledged write, every
//! failure and the longest gap between acknowledgements.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::workload::{lease_names, try_grant};
use crate::{Api, eventually};

/// What a background writer saw.
#[derive(Debug, Default)]
pub struct WriterReport {
    /// Ids of acknowledged leases.
    pub acked: BTreeSet<String>,
    /// Attempts answered 503 (retried with the same idempotency key).
    pub unavailable: usize,
    /// Anything else that was not a 201.
    pub failures: Vec<String>,
    /// Longest time between two acknowledgements.
    pub longest_gap: Duration,
}

/// A task granting leases through the given nodes in turn until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<WriterReport>,
}

impl Writer {
    /// Starts granting `{prefix}-N` leases through `apis` in turn.
    pub fn start(apis: Vec<Api>, prefix: &'static str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let (stop_rx, acks_tx) = (stop.clone(), acks.clone());
        let task = tokio::spawn(async move {
            let mut report = WriterReport::default();
            let mut last_ack = Instant::now();
            let mut n = 0usize;
            let mut attempt = 0usize;
            while !stop_rx.load(Ordering::Acquire) {
                let name = format!("{prefix}-{n}");
                let api = &apis[attempt % apis.len()];
                attempt += 1;
                match try_grant(api, &name, None).await {
                    Ok(id) => {
                        report.acked.insert(id);
                        report.longest_gap = report.longest_gap.max(last_ack.elapsed());
                        last_ack = Instant::now();
                        n += 1;
                        acks_tx.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(Ok(r)) if r.status == 503 => report.unavailable += 1,
                    Err(Ok(r)) => report
                        .failures
                        .push(format!("{name} via {}: {} {}", api.base, r.status, r.text)),
                    Err(Err(e)) => report
                        .failures
                        .push(format!("{name} via {}: no answer: {e}", api.base)),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            report
        });
        Writer { stop, acks, task }
    }

    /// Waits until `n` more writes are acknowledged than when called: the
    /// cluster serves writes in the current phase.
    pub async fn wait_more(&self, n: usize, phase: &str) {
        let target = self.acks.load(Ordering::Acquire) + n;
        let acks = self.acks.clone();
        eventually(
            Duration::from_secs(20),
            &format!("{n} acknowledged writes {phase}"),
            || {
                let seen = acks.load(Ordering::Acquire);
                async move {
                    if seen >= target {
                        Ok(())
                    } else {
                        Err(format!("{seen} of {target}"))
                    }
                }
            },
        )
        .await;
    }

    /// Stops the writer and returns what it saw.
    pub async fn finish(self) -> WriterReport {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("writer task")
    }
}

impl WriterReport {
    /// The acknowledged writes that node `api` does not hold in its local
    /// state.
    pub async fn missing_on(&self, api: &Api) -> Vec<String> {
        let held = lease_names(api, "local").await.expect("list leases");
        self.acked
            .iter()
            .filter(|l| !held.contains_key(*l))
            .cloned()
            .collect()
    }
}
