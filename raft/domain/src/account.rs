//! Accounts: tenants with an optional expiry, an operator switch and limits.
//!
//! An account's state is derived, never stored: `disabled` if the operator
//! switched it off, else `expired` once `expires_at` has passed, else
//! `active`. What an account owns reads its standing through
//! [`Accounts::owner_active`], so moving `expires_at` into the future or
//! enabling the account re-activates everything it owns in that same apply.
//! `expired_at` only records that the leader's reconciler processed the
//! expiry (and puts certificates on hold in the CRL); it is cleared whenever
//! the expiry moves into the future.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::clock::Millis;

/// Longest account name.
pub const MAX_NAME_LEN: usize = 63;

/// The kinds of resource an account can own and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Leases.
    Lease,
    /// Certificates.
    Certificate,
}

impl Resource {
    fn plural(self) -> &'static str {
        match self {
            Resource::Lease => "leases",
            Resource::Certificate => "certificates",
        }
    }
}

/// Per-account limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most leases the account may hold at once.
    pub max_leases: Option<u64>,
    /// Most live certificates the account may hold at once.
    pub max_certificates: Option<u64>,
}

/// A change to one optional field: keep it, clear it, or set it. An
/// explicit enum, not `Option<Option<T>>`, so "clear" survives every
/// encoding (MessagePack writes both `None` and `Some(None)` as nil).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Patch<T> {
    /// Leave the field as it is.
    #[default]
    Keep,
    /// Remove the value.
    Clear,
    /// Set the value.
    Set(T),
}

impl<T: Copy> Patch<T> {
    /// The field after the patch.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v),
        }
    }

    /// `Set` for `Some`, `Clear` for `None`.
    pub fn from_option(v: Option<T>) -> Self {
        v.map_or(Patch::Clear, Patch::Set)
    }
}

/// A change to limits; each field is kept, cleared (unlimited) or set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsPatch {
    /// New lease limit.
    pub max_leases: Patch<u64>,
    /// New certificate limit.
    pub max_certificates: Patch<u64>,
}

impl LimitsPatch {
    fn apply_to(&self, limits: &mut Limits) {
        limits.max_leases = self.max_leases.apply(limits.max_leases);
        limits.max_certificates = self.max_certificates.apply(limits.max_certificates);
    }
}

/// An account's state, derived at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Usable: what it owns is active.
    Active,
    /// Past its expiry: what it owns is suspended.
    Expired,
    /// Switched off by an operator: what it owns is suspended.
    Disabled,
}

impl AccountState {
    /// Parses the API's name of a state.
    pub fn parse(s: &str) -> Option<AccountState> {
        match s {
            "active" => Some(AccountState::Active),
            "expired" => Some(AccountState::Expired),
            "disabled" => Some(AccountState::Disabled),
            _ => None,
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The key: `[a-z0-9][a-z0-9._-]{0,62}`.
    pub name: String,
    /// When it expires, if ever.
    pub expires_at: Option<Millis>,
    /// The operator switch.
    pub disabled: bool,
    /// When the leader processed the expiry; cleared when the expiry moves
    /// into the future. Drives certificate holds in the CRL.
    pub expired_at: Option<Millis>,
    /// Limits.
    pub limits: Limits,
    /// Leases held now (kept exact by every lease operation).
    pub lease_count: u64,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Account {
    /// The derived state at `now`.
    pub fn state_at(&self, now: Millis) -> AccountState {
        if self.disabled {
            AccountState::Disabled
        } else if self.expires_at.is_some_and(|t| t <= now) {
            AccountState::Expired
        } else {
            AccountState::Active
        }
    }

    /// Whether what it owns is on hold in replicated terms (switched off, or
    /// expiry processed). Used where a result must not depend on the clock.
    pub fn on_hold(&self) -> bool {
        self.disabled || self.expired_at.is_some()
    }
}

/// Checks an account name against `[a-z0-9][a-z0-9._-]{0,62}`.
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "`{name}` is not a valid account name ([a-z0-9][a-z0-9._-]{{0,62}})"
        )))
    }
}

/// The account table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    by_name: imbl::OrdMap<String, Account>,
}

impl Accounts {
    /// Looks an account up.
    pub fn find(&self, name: &str) -> Option<&Account> {
        self.by_name.get(name)
    }

    /// Looks an account up, or refuses with `AccountNotFound`.
    pub fn get(&self, name: &str) -> Result<&Account, DomainError> {
        self.by_name
            .get(name)
            .ok_or_else(|| DomainError::AccountNotFound(name.to_string()))
    }

    /// Accounts in name order, starting after `after`.
    pub fn iter_from<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Account> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(name) => Bound::Excluded(name),
            None => Bound::Unbounded,
        };
        self.by_name
            .range::<_, str>((start, Bound::Unbounded))
            .map(|(_, a)| a)
    }

    /// How many accounts exist.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no account exists.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether an optional owner lets its resources be active at `now`.
    /// A resource without an owner is always in good standing.
    pub fn owner_active(&self, owner: Option<&str>, now: Millis) -> bool {
        match owner {
            None => true,
            Some(name) => self
                .by_name
                .get(name)
                .is_some_and(|a| a.state_at(now) == AccountState::Active),
        }
    }

    /// Whether an optional owner puts its resources on hold, in replicated
    /// terms (no clock involved).
    pub fn owner_on_hold(&self, owner: Option<&str>) -> bool {
        owner.is_some_and(|name| self.by_name.get(name).is_none_or(Account::on_hold))
    }

    /// Refuses a new resource for `name` unless the account exists, is
    /// active at `now`, and there is room under its limit: leases are
    /// counted by the account itself; for certificates the caller says how
    /// many the account holds (`in_use`).
    pub fn admit(
        &self,
        now: Millis,
        name: &str,
        resource: Resource,
        in_use: u64,
    ) -> Result<(), DomainError> {
        let account = self.get(name)?;
        if account.state_at(now) != AccountState::Active {
            return Err(DomainError::AccountInactive(name.to_string()));
        }
        let (limit, in_use) = match resource {
            Resource::Lease => (account.limits.max_leases, account.lease_count),
            Resource::Certificate => (account.limits.max_certificates, in_use),
        };
        if let Some(limit) = limit
            && in_use >= limit
        {
            return Err(DomainError::LimitExceeded {
                account: name.to_string(),
                resource: resource.plural().to_string(),
                limit,
            });
        }
        Ok(())
    }

    /// Adjusts a counted resource's usage.
    pub fn adjust_usage(&mut self, name: &str, resource: Resource, delta: i64) {
        if let (Some(account), Resource::Lease) = (self.by_name.get_mut(name), resource) {
            account.lease_count = account.lease_count.saturating_add_signed(delta);
        }
    }

    /// Creates an account.
    pub fn create(
        &mut self,
        now: Millis,
        name: &str,
        expires_at: Option<Millis>,
        limits: &LimitsPatch,
    ) -> Result<Account, DomainError> {
        validate_name(name)?;
        if self.by_name.contains_key(name) {
            return Err(DomainError::AlreadyExists(format!(
                "account `{name}` already exists"
            )));
        }
        let mut account = Account {
            name: name.to_string(),
            expires_at,
            disabled: false,
            expired_at: None,
            limits: Limits::default(),
            lease_count: 0,
            created_at: now,
            updated_at: now,
        };
        limits.apply_to(&mut account.limits);
        self.by_name.insert(name.to_string(), account.clone());
        Ok(account)
    }

    /// Changes expiry and limits. An expiry moved into the future (or
    /// cleared) re-activates the account at once.
    pub fn update(
        &mut self,
        now: Millis,
        name: &str,
        expires_at: Patch<Millis>,
        limits: &LimitsPatch,
    ) -> Result<Account, DomainError> {
        let account = self.get_mut(name)?;
        if expires_at != Patch::Keep {
            let new_expiry = expires_at.apply(account.expires_at);
            account.expires_at = new_expiry;
            if new_expiry.is_none_or(|t| t > now) {
                account.expired_at = None;
            }
        }
        limits.apply_to(&mut account.limits);
        account.updated_at = now;
        Ok(account.clone())
    }

    /// Flips the operator switch.
    pub fn set_disabled(
        &mut self,
        now: Millis,
        name: &str,
        disabled: bool,
    ) -> Result<Account, DomainError> {
        let account = self.get_mut(name)?;
        if account.disabled != disabled {
            account.disabled = disabled;
            account.updated_at = now;
        }
        Ok(account.clone())
    }

    /// Records that the expiry was processed, if it has passed at `now`.
    /// Re-checks the deadline, so a stale proposal changes nothing.
    pub fn expire(&mut self, now: Millis, name: &str) -> Result<Account, DomainError> {
        let account = self.get_mut(name)?;
        if account.expires_at.is_some_and(|t| t <= now) && account.expired_at.is_none() {
            account.expired_at = Some(now);
            account.updated_at = now;
        }
        Ok(account.clone())
    }

    /// Accounts whose expiry has passed at `now` but was not yet processed.
    pub fn due_for_expiry(&self, now: Millis) -> Vec<String> {
        self.by_name
            .values()
            .filter(|a| a.expired_at.is_none() && a.expires_at.is_some_and(|t| t <= now))
            .map(|a| a.name.clone())
            .collect()
    }

    /// The earliest unprocessed expiry, if any.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.by_name
            .values()
            .filter(|a| a.expired_at.is_none())
            .filter_map(|a| a.expires_at)
            .min()
    }

    /// Removes an account (its resources must already be revoked).
    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Account, DomainError> {
        self.by_name
            .get_mut(name)
            .ok_or_else(|| DomainError::AccountNotFound(name.to_string()))
    }
}
