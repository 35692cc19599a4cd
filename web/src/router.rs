//! Assembles the API listener's router: unauthenticated health routes,
//! then `/v1/*` behind authentication, authorization and the draining gate, all under
//! the request-id/metrics middleware.

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::middleware::{authenticate, observe, refuse_when_draining};
use crate::routes::{
    accounts, cluster, health, lease_batch, leases, pki, snapshot, status, sys, tokens, ui,
    warnings,
};
use crate::shared::Shared;

async fn not_found() -> impl IntoResponse {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}

/// The API listener's router.
pub fn api_router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/v1/sys/lifecycle", get(sys::lifecycle))
        .route("/v1/sys/seal", post(sys::seal))
        .route("/v1/sys/unseal", post(sys::unseal))
        .route("/v1/sys/init", post(sys::init))
        .route("/v1/sys/rotate-key", post(sys::rotate_key))
        .route("/v1/sys/join-token", post(sys::join_token))
        .route("/v1/sys/peer-ca", get(sys::peer_ca))
        .route("/v1/sys/peer-ca/rotate", post(sys::rotate_peer_ca))
        .route("/v1/sys/reload", post(sys::reload))
        .route("/v1/sys/audit/hash", post(sys::audit_hash))
        .route("/v1/sys/snapshot", get(snapshot::save))
        .route("/v1/sys/snapshot/restore", post(snapshot::restore))
        .route("/v1/sys/warnings", get(warnings::warnings))
        .route("/v1/sys/census", get(status::census))
        .route("/v1/sys/events", get(status::events))
        .route("/v1/cluster", get(cluster::get_cluster))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route(
            "/v1/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member),
        )
        .route(
            "/v1/cluster/members/{id}/decommission",
            post(cluster::decommission),
        )
        .route(
            "/v1/cluster/transfer-leader",
            post(cluster::transfer_leader),
        )
        .route("/v1/leases", post(leases::grant).get(leases::list))
        .route("/v1/leases/revoke-prefix", post(leases::revoke_prefix))
        .route("/v1/leases/batch", post(lease_batch::batch))
        .route("/v1/leases/{id}", get(leases::get).delete(leases::revoke))
        .route("/v1/leases/{id}/renew", post(leases::renew))
        .route("/v1/accounts", post(accounts::create).get(accounts::list))
        .route(
            "/v1/accounts/{name}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route("/v1/accounts/{name}/disable", post(accounts::disable))
        .route("/v1/accounts/{name}/enable", post(accounts::enable))
        .route("/v1/pki/ca", get(pki::ca))
        .route("/v1/pki/issue", post(pki::issue))
        .route("/v1/pki/sign", post(pki::sign))
        .route("/v1/pki/certs", get(pki::list))
        .route("/v1/pki/certs/{serial}", get(pki::get))
        .route("/v1/pki/certs/{serial}/renew", post(pki::renew))
        .route("/v1/pki/certs/{serial}/activate", post(pki::activate))
        .route("/v1/pki/certs/{serial}/revoke", post(pki::revoke))
        .route("/v1/pki/crl", get(pki::crl))
        .route("/v1/auth/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/auth/tokens/self", post(tokens::lookup_self))
        .route("/v1/auth/tokens/self/renew", post(tokens::renew_self))
        .route(
            "/v1/auth/tokens/{accessor}",
            get(tokens::get).delete(tokens::revoke),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    let v1 = Router::new()
        .route("/v1/sys/seal-status", get(sys::seal_status))
        .merge(protected)
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            refuse_when_draining,
        ));
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/ui", get(ui::redirect))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/style.css", get(ui::style))
        .route("/ui/favicon.svg", get(ui::favicon))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}
