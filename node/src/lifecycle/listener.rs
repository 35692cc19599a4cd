//! A listener serving in the background, stopped with drain-then-force.

use std::net::SocketAddr;

use axum::Router;
use keel_web::{Component, DrainDeadline, DrainReport, TlsSlot};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A serving listener.
pub struct RunningListener {
    /// Which listener.
    pub component: Component,
    /// Where it is bound.
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<DrainReport>,
}

impl RunningListener {
    /// Binds `addr` and starts serving `router`.
    pub async fn start(
        component: Component,
        addr: SocketAddr,
        router: Router,
        tls: Option<TlsSlot>,
        drain: DrainDeadline,
    ) -> Result<Self, String> {
        let name = component.name();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot bind the {name} to {addr}: {e}"))?;
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(keel_web::serve(
            name,
            listener,
            router,
            tls,
            stop.clone(),
            drain,
        ));
        Ok(RunningListener {
            component,
            local_addr,
            stop,
            task,
        })
    }

    /// Stops accepting, drains, cuts at the deadline; returns when every
    /// connection has ended.
    pub async fn stop(self) -> DrainReport {
        self.stop.cancel();
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(listener = self.component.name(), error = %e, "listener task failed");
                DrainReport::default()
            }
        }
    }
}
