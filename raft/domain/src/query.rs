//! The lists the API offers, as queries over the state: which objects a
//! filter selects, in key order, from a cursor on, each with its derived
//! state at `now`. The web layer only parses the filter and renders; how a
//! list is filtered and which index serves it is decided here.

use crate::State;
use crate::account::{Account, AccountState};
use crate::cert::{CertRecord, CertState, Pki};
use crate::clock::Millis;
use crate::lease::{Lease, LeaseId, LeaseState, Leases};
use crate::token::Token;

/// Which leases a list selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseFilter {
    /// Names starting with this.
    pub prefix: Option<String>,
    /// Owned by this account.
    pub account: Option<String>,
    /// In this state.
    pub state: Option<LeaseState>,
}

/// Which accounts a list selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Only this account (a tenant sees its own).
    pub only: Option<String>,
    /// In this state.
    pub state: Option<AccountState>,
}

/// Which certificates a list selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFilter {
    /// Owned by this account.
    pub account: Option<String>,
    /// In this state.
    pub state: Option<CertState>,
}

impl State {
    /// The leases `filter` selects after `after`, in id order, with their
    /// states at `now`. With a prefix, the name index finds the candidates,
    /// so the cost follows what the prefix matches, not the table.
    pub fn list_leases<'a>(
        &'a self,
        filter: &'a LeaseFilter,
        after: Option<LeaseId>,
        now: Millis,
    ) -> impl Iterator<Item = (&'a Lease, LeaseState)> + 'a {
        let leases: Box<dyn Iterator<Item = &'a Lease> + 'a> = match filter.prefix.as_deref() {
            Some(p) => Box::new(self.leases.with_prefix(p, after).into_iter()),
            None => Box::new(self.leases.iter_from(after)),
        };
        leases
            .filter(|l| {
                filter
                    .account
                    .as_deref()
                    .is_none_or(|a| l.account.as_deref() == Some(a))
            })
            .map(move |l| (l, Leases::state_of(l, now, &self.accounts)))
            .filter(|(_, st)| filter.state.is_none_or(|f| f == *st))
    }

    /// The accounts `filter` selects after the name `after`, in name order.
    pub fn list_accounts<'a>(
        &'a self,
        filter: &'a AccountFilter,
        after: Option<&'a str>,
        now: Millis,
    ) -> impl Iterator<Item = &'a Account> + 'a {
        self.accounts
            .iter_from(after)
            .filter(|a| filter.only.as_deref().is_none_or(|only| a.name == only))
            .filter(move |a| filter.state.is_none_or(|f| a.state_at(now) == f))
    }

    /// The certificates `filter` selects after the serial `after`, in
    /// serial order, with their states at `now`.
    pub fn list_certificates<'a>(
        &'a self,
        filter: &'a CertFilter,
        after: Option<&'a str>,
        now: Millis,
    ) -> impl Iterator<Item = (&'a CertRecord, CertState)> + 'a {
        self.pki
            .iter_from(after)
            .filter(|c| {
                filter
                    .account
                    .as_deref()
                    .is_none_or(|a| c.account.as_deref() == Some(a))
            })
            .map(move |c| (c, Pki::state_of(c, now, &self.accounts)))
            .filter(|(_, st)| filter.state.is_none_or(|f| f == *st))
    }

    /// The tokens live at `now` after the accessor `after`, in accessor
    /// order.
    pub fn list_tokens<'a>(
        &'a self,
        after: Option<&'a str>,
        now: Millis,
    ) -> impl Iterator<Item = &'a Token> + 'a {
        self.tokens.iter_from(after).filter(move |t| t.live_at(now))
    }
}
