//! Process signals: the first SIGTERM or SIGINT starts an orderly stop, a
//! second one forces exit; SIGHUP asks for a configuration reload.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Exit code of a forced exit after a second signal.
const FORCED_EXIT: i32 = 130;

/// Signal handling for a running node.
pub struct Signals {
    /// Cancelled by the first SIGTERM/SIGINT.
    pub stop: CancellationToken,
    /// Notified on SIGHUP.
    pub reload: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let stop = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        let (stop_signal, reload_signal) = (stop.clone(), reload.clone());
        let task = tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    Some(()) = hup.recv() => {
                        reload_signal.notify_one();
                        continue;
                    }
                    else => return,
                };
                if stop_signal.is_cancelled() {
                    tracing::warn!(signal = name, "second stop signal: forcing exit");
                    eprintln!("keel: second {name}, forcing exit");
                    std::process::exit(FORCED_EXIT);
                }
                tracing::info!(
                    signal = name,
                    "stop requested; shutting down (send it again to force)"
                );
                stop_signal.cancel();
            }
        });
        Ok(Signals { stop, reload, task })
    }

    /// Stops listening for signals and waits for the handler task.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
