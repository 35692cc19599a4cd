//! The HTTP transport: a [`PeerCall`] as a POST to the peer listener.
//!
//! The route is the RPC's path; the cluster secret goes as a bearer token,
//! the call's cluster id, addressee and watermark as headers
//! ([`super::CLUSTER_HEADER`], [`wire::TO_HEADER`], [`wire::ACKED_HEADER`]),
//! and a refusal comes back as keel's JSON error body, read into a
//! [`PeerRefusal`]. Peer addresses are `host:port` names resolved on every
//! new connection, so a peer that returns under the same name with a new
//! IP is found again.

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{CLUSTER_HEADER, ClusterSecret, PeerBody, PeerCall, PeerCallError, Transport};
use crate::wire::{self, PeerRefusal};

/// reqwest to other nodes' peer listeners.
pub struct HttpTransport {
    http: reqwest::Client,
    scheme: &'static str,
    secret: ClusterSecret,
}

impl HttpTransport {
    /// Over an HTTP client the node configured; `tls` selects `https`.
    pub fn new(http: reqwest::Client, tls: bool, secret: ClusterSecret) -> Self {
        HttpTransport {
            http,
            scheme: if tls { "https" } else { "http" },
            secret,
        }
    }

    fn request(&self, call: PeerCall) -> reqwest::RequestBuilder {
        let url = format!("{}://{}{}", self.scheme, call.addr, call.rpc.path());
        let mut builder = self
            .http
            .post(url)
            .bearer_auth(&*self.secret.get())
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .timeout(call.timeout);
        if let Some(id) = &call.cluster {
            builder = builder.header(CLUSTER_HEADER, &**id);
        }
        if let Some(to) = call.to {
            builder = builder.header(wire::TO_HEADER, to);
        }
        if let Some(acked) = call.acked {
            builder = builder.header(wire::ACKED_HEADER, acked);
        }
        match call.body {
            PeerBody::Bytes(bytes) => builder.body(bytes),
            PeerBody::Stream(stream) => builder.body(reqwest::Body::wrap_stream(stream)),
        }
    }
}

impl Transport for HttpTransport {
    fn send(&self, call: PeerCall) -> BoxFuture<'static, Result<Bytes, PeerCallError>> {
        let request = self.request(call);
        Box::pin(async move {
            let response = request.send().await.map_err(send_error)?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| PeerCallError::Unreachable(describe(&e)))?;
            if !status.is_success() {
                let body = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
                return Err(PeerCallError::Status {
                    status: status.as_u16(),
                    refusal: PeerRefusal::read(&bytes),
                    body,
                });
            }
            Ok(bytes)
        })
    }
}

fn send_error(e: reqwest::Error) -> PeerCallError {
    if e.is_connect() {
        PeerCallError::Connect(describe(&e))
    } else {
        PeerCallError::Unreachable(describe(&e))
    }
}

/// A reqwest error with its causes, for logs.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
