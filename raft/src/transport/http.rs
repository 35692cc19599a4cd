//! The HTTP transport: a [`PeerCall`] as a POST to the peer listener.
//!
//! The route is the RPC's path; the cluster secret goes as a bearer token
//! (unless nodes authenticate by certificate), the sender's node name, the call's cluster id, addressee and watermark
//! as headers ([`super::FROM_HEADER`], [`super::CLUSTER_HEADER`],
//! [`wire::TO_HEADER`], [`wire::ACKED_HEADER`]),
//! and a refusal comes back as keel's JSON error body, read into a
//! [`PeerRefusal`]. Peer addresses are `host:port` names resolved on every
//! new connection, so a peer that returns under the same name with a new
//! IP is found again.

use bytes::Bytes;
use futures::future::BoxFuture;

use std::sync::Arc;

use super::{
    CLUSTER_HEADER, ClusterSecret, FROM_HEADER, PeerBody, PeerCall, PeerCallError, Transport,
};
use crate::types::{NodeId, NodeName, name_of};
use crate::wire::{self, PeerRefusal};

/// The HTTP clients peer calls go out on: one per addressee when the node
/// checks whom it reaches (mutual TLS with node certificates), or one for
/// all.
pub trait PeerHttp: Send + Sync + 'static {
    /// The client (and scheme) for a call to node `to`, if the caller
    /// knows which node it calls.
    fn client(&self, to: Option<NodeName>) -> (reqwest::Client, &'static str);

    /// Whether calls carry the cluster secret as a bearer token: not when
    /// nodes authenticate by certificate, so the secret never goes to a
    /// server not yet verified.
    fn sends_secret(&self) -> bool {
        true
    }
}

/// One client for every peer.
pub struct OneClient {
    /// The client.
    pub http: reqwest::Client,
    /// `http` or `https`.
    pub scheme: &'static str,
}

impl PeerHttp for OneClient {
    fn client(&self, _to: Option<NodeName>) -> (reqwest::Client, &'static str) {
        (self.http.clone(), self.scheme)
    }
}

/// reqwest to other nodes' peer listeners.
pub struct HttpTransport {
    http: Arc<dyn PeerHttp>,
    secret: ClusterSecret,
    from: NodeName,
}

impl HttpTransport {
    /// Over the node's peer clients, sending as node `from`.
    pub fn new(http: Arc<dyn PeerHttp>, secret: ClusterSecret, from: NodeName) -> Self {
        HttpTransport { http, secret, from }
    }

    fn request(&self, call: PeerCall) -> reqwest::RequestBuilder {
        let (http, scheme) = self.http.client(call.to.map(|t: NodeId| name_of(t)));
        let url = format!("{scheme}://{}{}", call.addr, call.rpc.path());
        let mut builder = http.post(url).header(FROM_HEADER, self.from);
        if self.http.sends_secret() {
            builder = builder.bearer_auth(&*self.secret.get());
        }
        builder = builder
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
