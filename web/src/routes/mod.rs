//! Handlers of the admin API, one module per resource.

pub mod accounts;
pub mod cluster;
pub mod health;
pub mod lease_batch;
pub mod leases;
pub mod pki;
pub mod snapshot;
pub mod status;
pub mod sys;
pub mod tokens;
pub mod ui;
pub mod warnings;
