//! The OpenAPI document, generated from the handlers' annotations so it
//! cannot drift from what is served.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    accounts, cluster, health, lease_batch, leases, pki, snapshot, status, sys, tokens, ui,
    warnings,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// keel's REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "keel", description = "Raft-backed control plane: leases, accounts and a cluster CA"),
    modifiers(&BearerAuth),
    paths(
        health::livez, health::readyz, health::metrics, health::openapi,
        sys::lifecycle, sys::seal_status, sys::seal, sys::unseal, sys::init, sys::rotate_key, sys::join_token, sys::peer_ca, sys::rotate_peer_ca, sys::reload, sys::audit_hash,
        snapshot::save, snapshot::restore, warnings::warnings,
        status::census, status::events, ui::index,
        cluster::get_cluster, cluster::add_member, cluster::remove_member, cluster::transfer_leader,
        cluster::decommission,
        leases::grant, leases::get, leases::list, leases::renew, leases::revoke, leases::revoke_prefix,
        lease_batch::batch,
        accounts::create, accounts::get, accounts::list, accounts::update, accounts::disable, accounts::enable, accounts::delete,
        tokens::create, tokens::list, tokens::get, tokens::revoke, tokens::lookup_self, tokens::renew_self,
        pki::ca, pki::issue, pki::sign, pki::get, pki::list, pki::renew, pki::activate, pki::revoke, pki::crl,
    ),
    tags(
        (name = "health"), (name = "sys"), (name = "cluster"),
        (name = "leases"), (name = "accounts"), (name = "pki"), (name = "auth"),
    )
)]
pub struct ApiDoc;

/// The served document: generated from the annotations, then completed
/// with the statuses and constraints of the contract (see
/// [`crate::contract`]) for a node enforcing `policy`.
pub fn document(policy: &keel_raft::settings::Policy) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    crate::contract::complete(&mut doc, policy);
    doc
}
