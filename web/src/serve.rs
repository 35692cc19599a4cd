//! The accept loop of a listener: HTTP/1.1 over TCP (optionally TLS), with
//! drain-then-force shutdown, a cap on open connections and deadlines on
//! the TLS handshake and on reading request headers (bodies: see
//! `extract`), so slow or idle clients cannot hold a listener.
//!
//! `serve` runs until `stop` is cancelled. It then stops accepting (the
//! listener is closed, so new connections are refused), asks every open
//! connection to finish its in-flight request and close, waits up to the
//! drain deadline, and aborts whatever is still running. It returns only
//! when every connection task has ended: nothing it spawned outlives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::enrol::ClientCertificate;

/// TLS configuration of a listener, replaceable at runtime (reload): each
/// new connection uses the configuration current when it is accepted.
#[derive(Clone, Debug, Default)]
pub struct TlsSlot(Arc<RwLock<Option<Arc<ServerConfig>>>>);

impl TlsSlot {
    /// A slot holding `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsSlot(Arc::new(RwLock::new(Some(config))))
    }

    /// Replaces the configuration.
    pub fn set(&self, config: Arc<ServerConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(TlsAcceptor::from)
    }
}

/// How long in-flight requests may take to finish once a stop begins. Read
/// when the stop begins, so a reload can change it while serving.
#[derive(Clone, Debug)]
pub struct DrainDeadline(Arc<AtomicU64>);

impl DrainDeadline {
    /// A deadline of `d`.
    pub fn new(d: Duration) -> Self {
        DrainDeadline(Arc::new(AtomicU64::new(d.as_millis() as u64)))
    }

    /// Changes it.
    pub fn set(&self, d: Duration) {
        self.0.store(d.as_millis() as u64, Ordering::Release);
    }

    /// The current value.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Acquire))
    }
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections a listener holds open at once; beyond it, new connections
/// wait in the kernel's backlog until one closes. With the header, body
/// and handshake timeouts, a client that opens connections and sends
/// nothing (slowloris) holds them for seconds, not forever.
pub const MAX_CONNECTIONS: usize = 4096;

/// What happened when a listener drained.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainReport {
    /// Connections open when the stop began.
    pub open_at_stop: usize,
    /// Connections still running at the deadline, cut.
    pub cut: usize,
}

/// Serves `router` on `listener` until `stop`, then drains for at most
/// `drain_timeout` and cuts the rest.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    tls: Option<TlsSlot>,
    stop: CancellationToken,
    drain: DrainDeadline,
) -> DrainReport {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                let watcher = graceful.watcher();
                let acceptor = tls.as_ref().and_then(TlsSlot::acceptor);
                connections.spawn(async move {
                    let result = match acceptor {
                        None => {
                            let service = TowerToHyperService::new(router);
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Some(acceptor) => match tokio::time::timeout(
                            TLS_HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls_stream)) => {
                                // The client certificate rustls verified (if
                                // any) goes with every request of the connection.
                                let presented = tls_stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .map(|c| ClientCertificate(Arc::new(c.as_ref().to_vec())));
                                let service = TowerToHyperService::new(router.map_request(
                                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                                        if let Some(c) = &presented {
                                            req.extensions_mut().insert(c.clone());
                                        }
                                        req
                                    },
                                ));
                                let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                                watcher.watch(conn).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let open_at_stop = connections.len();
    tracing::info!(
        listener = name,
        open = open_at_stop,
        "stopped accepting; draining"
    );
    let drained = tokio::time::timeout(drain.get(), graceful.shutdown())
        .await
        .is_ok();
    let cut = if drained {
        0
    } else {
        let n = connections.len();
        tracing::warn!(
            listener = name,
            cut = n,
            "drain deadline reached; cutting connections"
        );
        connections.abort_all();
        n
    };
    while connections.join_next().await.is_some() {}
    tracing::info!(listener = name, "listener stopped");
    DrainReport { open_at_stop, cut }
}
