//! Tests of the pure domain: table-driven cases for every account state
//! against every operation, lease lifecycle edges, and property tests that
//! random command sequences keep the invariants and replay identically.
//! This file holds the shared helpers; each topic has its own file.

mod accounts;
mod census;
mod lease_batch;
mod leases;
mod properties;
mod restore;
mod tidy;
mod time;
mod tokens;

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::account::{AccountState, LimitsPatch, Patch};
use super::lease::{LeaseState, Leases, MIN_TTL_MS};
use super::*;
use crate::command::{IdempotencyStamp, Outcome};
use crate::encoding::{decode_state, encode_state};

pub(super) const T0: Millis = 1_800_000_000_000;
pub(super) const SEC: u64 = 1_000;

pub(super) fn at(now: Millis, command: Command) -> Proposal {
    Proposal {
        now,
        command,
        quotas: Default::default(),
        scope: None,
        idempotency: None,
    }
}

pub(super) fn grant(id: u64, ttl: u64, max: u64, account: Option<&str>) -> Command {
    Command::GrantLease {
        id,
        ttl_ms: ttl,
        max_ttl_ms: max,
        name: Some(format!("svc/{id}")),
        account: account.map(str::to_string),
        metadata: BTreeMap::new(),
    }
}

pub(super) fn create_account(
    name: &str,
    expires_at: Option<Millis>,
    max_leases: Option<u64>,
) -> Command {
    Command::CreateAccount {
        name: name.into(),
        expires_at,
        limits: LimitsPatch {
            max_leases: Patch::from_option(max_leases),
            max_certificates: Patch::Keep,
        },
    }
}

pub(super) fn lease_state(s: &State, id: u64, now: Millis) -> Option<LeaseState> {
    s.leases
        .get(id)
        .map(|l| Leases::state_of(l, now, &s.accounts))
}
