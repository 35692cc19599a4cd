//! Golden tests of the domain: each file under `tests/golden/` is a script
//! of commands applied to one [`State`], each followed by the outcome and
//! state it must produce (after toydb's goldenscript).
//!
//! A block is one or more command lines, a `----` line, then the expected
//! output, and ends at a blank line; `#` starts a comment. After every
//! command the state's indexes are checked and the snapshot encoding must
//! round-trip. `UPDATE_GOLDEN=1 cargo test -p keel-domain --test golden`
//! rewrites the files with what the domain produces now; review the diff
//! before committing it, because a golden file is only as right as the
//! person who read it.
//!
//! Commands (times and durations as `90s`, `1500ms`, `2m`, `1h`; times
//! count from the script's epoch):
//! - `at T`: the clock every following command is stamped with
//! - `grant ID ttl=D [max=D] [name=N] [account=A]`, `renew ID [inc=D]`,
//!   `revoke ID`, `revoke-prefix P`, `expire ID...`
//! - `account create N [expires=T] [max-leases=K]`,
//!   `account update N [expires=T|none] [max-leases=K|none]`,
//!   `account disable|enable|expire|delete N`
//! - `leases`, `accounts`: the tables as of the clock; `due`: leases whose
//!   deadline has passed

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use keel_domain::account::{LimitsPatch, Patch};
use keel_domain::clock::Millis;
use keel_domain::command::{Command, Outcome, Proposal};
use keel_domain::encoding::{decode_state, encode_state};
use keel_domain::lease::{Lease, LeaseState, Leases};
use keel_domain::{DomainError, State};

/// The script's epoch: a fixed wall-clock time.
const EPOCH: Millis = 1_800_000_000_000;

fn parse_duration(s: &str) -> Result<u64, String> {
    let (digits, unit): (String, String) = s.chars().partition(|c| c.is_ascii_digit());
    let n: u64 = digits.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let scale = match unit.as_str() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("bad duration unit in `{s}`")),
    };
    Ok(n * scale)
}

/// A time or duration as the scripts write it: whole seconds when they are.
fn show(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

fn show_at(t: Millis) -> String {
    if t >= EPOCH {
        show(t - EPOCH)
    } else {
        format!("-{}", show(EPOCH - t))
    }
}

/// `key=value` arguments after the positional ones.
struct Args<'a> {
    positional: Vec<&'a str>,
    named: BTreeMap<&'a str, &'a str>,
}

impl<'a> Args<'a> {
    fn parse(words: &[&'a str]) -> Self {
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    named.insert(k, v);
                }
                None => positional.push(*w),
            }
        }
        Args { positional, named }
    }

    fn pos(&self, i: usize) -> Result<&'a str, String> {
        self.positional
            .get(i)
            .copied()
            .ok_or_else(|| format!("missing argument {}", i + 1))
    }

    fn id(&self, i: usize) -> Result<u64, String> {
        self.pos(i)?
            .parse()
            .map_err(|_| format!("bad lease id `{}`", self.pos(i).unwrap_or("")))
    }

    fn duration(&self, key: &str) -> Result<Option<u64>, String> {
        self.named.get(key).map(|v| parse_duration(v)).transpose()
    }

    fn text(&self, key: &str) -> Option<String> {
        self.named.get(key).map(|v| v.to_string())
    }

    /// Absent keeps, `none` clears, a value sets.
    fn patch<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Patch<T>, String> {
        match self.named.get(key) {
            None => Ok(Patch::Keep),
            Some(&"none") => Ok(Patch::Clear),
            Some(v) => Ok(Patch::Set(parse(v)?)),
        }
    }
}

fn count(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| format!("bad count `{v}`"))
}

fn time(v: &str) -> Result<Millis, String> {
    Ok(EPOCH + parse_duration(v)?)
}

/// Runs one script against one state.
struct Runner {
    state: State,
    now: Millis,
}

impl Runner {
    fn command(&self, words: &[&str]) -> Result<Option<Command>, String> {
        let args = Args::parse(&words[1..]);
        let command = match words[0] {
            "grant" => Command::GrantLease {
                id: args.id(0)?,
                ttl_ms: args.duration("ttl")?.ok_or("grant needs ttl=")?,
                max_ttl_ms: args.duration("max")?.unwrap_or(3_600_000),
                name: args.text("name"),
                account: args.text("account"),
                metadata: BTreeMap::new(),
            },
            "renew" => Command::RenewLease {
                id: args.id(0)?,
                increment_ms: args.duration("inc")?,
            },
            "revoke" => Command::RevokeLease { id: args.id(0)? },
            "revoke-prefix" => Command::RevokeLeasePrefix {
                prefix: args.pos(0)?.to_string(),
            },
            "expire" => Command::ExpireLeases {
                ids: (0..args.positional.len())
                    .map(|i| args.id(i))
                    .collect::<Result<_, _>>()?,
            },
            "account" => {
                let name = args.pos(1)?.to_string();
                match args.pos(0)? {
                    "create" => Command::CreateAccount {
                        name,
                        expires_at: args.named.get("expires").map(|v| time(v)).transpose()?,
                        limits: LimitsPatch {
                            max_leases: args.patch("max-leases", count)?,
                            max_certificates: Patch::Keep,
                        },
                    },
                    "update" => Command::UpdateAccount {
                        name,
                        expires_at: args.patch("expires", time)?,
                        limits: LimitsPatch {
                            max_leases: args.patch("max-leases", count)?,
                            max_certificates: Patch::Keep,
                        },
                    },
                    "disable" => Command::SetAccountDisabled {
                        name,
                        disabled: true,
                    },
                    "enable" => Command::SetAccountDisabled {
                        name,
                        disabled: false,
                    },
                    "expire" => Command::ExpireAccount { name },
                    "delete" => Command::DeleteAccount { name },
                    other => return Err(format!("unknown account command `{other}`")),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(command))
    }

    fn lease_line(&self, l: &Lease, state: LeaseState) -> String {
        let mut line = format!("lease {} {}", l.id, lower(state));
        if let Some(name) = &l.name {
            let _ = write!(line, " name={name}");
        }
        if let Some(account) = &l.account {
            let _ = write!(line, " account={account}");
        }
        let _ = write!(
            line,
            " expires={} hard={} renewals={}",
            show_at(l.expires_at),
            show_at(l.hard_expires_at),
            l.renewals
        );
        line
    }

    fn outcome(&self, outcome: &Result<Outcome, DomainError>) -> String {
        match outcome {
            Ok(Outcome::Done) => "ok".into(),
            Ok(Outcome::Count(n)) => format!("ok count={n}"),
            Ok(Outcome::Lease(v)) => format!("ok {}", self.lease_line(&v.lease, v.state)),
            Ok(Outcome::Account(a)) => format!("ok {}", account_line(a, self.now)),
            Ok(other) => format!("ok {other:?}"),
            Err(e) => {
                let debug = format!("{e:?}");
                let kind = debug.split(['(', ' ']).next().unwrap_or("");
                format!("error {kind}: {e}")
            }
        }
    }

    fn run(&mut self, line: &str) -> Result<Vec<String>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "at" => {
                self.now = time(words.get(1).ok_or("at needs a time")?)?;
                return Ok(vec![]);
            }
            "leases" => {
                let s = &self.state;
                return Ok(s
                    .leases
                    .iter()
                    .map(|l| self.lease_line(l, Leases::state_of(l, self.now, &s.accounts)))
                    .collect());
            }
            "accounts" => {
                return Ok(self
                    .state
                    .accounts
                    .iter_from(None)
                    .map(|a| account_line(a, self.now))
                    .collect());
            }
            "due" => {
                let due = self.state.leases.due(self.now, usize::MAX);
                let ids: Vec<String> = due.iter().map(|(id, _)| id.to_string()).collect();
                return Ok(vec![format!("due [{}]", ids.join(" "))]);
            }
            _ => {}
        }
        let command = self
            .command(&words)?
            .ok_or_else(|| format!("unknown command `{}`", words[0]))?;
        let proposal = Proposal {
            now: self.now,
            command,
            idempotency: None,
            quotas: Default::default(),
            scope: None,
        };
        let outcome = self.state.apply(&proposal);
        self.check()?;
        Ok(vec![self.outcome(&outcome)])
    }

    /// The indexes agree with the tables, and the snapshot encoding
    /// round-trips to the same bytes.
    fn check(&self) -> Result<(), String> {
        self.state.leases.check_invariants()?;
        let bytes = encode_state(&self.state).map_err(|e| e.to_string())?;
        let again = decode_state(&bytes).map_err(|e| e.to_string())?;
        if encode_state(&again).map_err(|e| e.to_string())? != bytes {
            return Err("the snapshot encoding does not round-trip".into());
        }
        Ok(())
    }
}

/// A state as the API names it.
fn lower(state: impl std::fmt::Debug) -> String {
    format!("{state:?}").to_lowercase()
}

fn account_line(a: &keel_domain::account::Account, now: Millis) -> String {
    let mut line = format!("account {} {}", a.name, lower(a.state_at(now)));
    if let Some(t) = a.expires_at {
        let _ = write!(line, " expires={}", show_at(t));
    }
    if let Some(t) = a.expired_at {
        let _ = write!(line, " expired_at={}", show_at(t));
    }
    if a.disabled {
        line.push_str(" disabled");
    }
    let _ = write!(line, " leases={}", a.lease_count);
    if let Some(max) = a.limits.max_leases {
        let _ = write!(line, " max_leases={max}");
    }
    line
}

/// Runs a script, returning the file as it should read.
fn replay(script: &str) -> Result<String, String> {
    let mut runner = Runner {
        state: State::default(),
        now: EPOCH,
    };
    let mut out = String::new();
    let mut lines = script.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // A block: commands up to `----`, then its old output up to a
        // blank line, which is replaced by what the commands produce now.
        let mut produced = Vec::new();
        let mut command = Some((n, line));
        while let Some((n, line)) = command {
            out.push_str(line);
            out.push('\n');
            let lines_out = runner
                .run(line.trim())
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            produced.extend(lines_out);
            command = lines.next_if(|(_, l)| l.trim() != "----" && !l.trim().is_empty());
        }
        if lines.next_if(|(_, l)| l.trim() == "----").is_some() {
            while lines.next_if(|(_, l)| !l.trim().is_empty()).is_some() {}
        }
        out.push_str("----\n");
        for p in produced {
            out.push_str(&p);
            out.push('\n');
        }
    }
    Ok(out)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_golden_script_produces_its_recorded_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden scripts found");
    let mut failures = Vec::new();
    for file in &files {
        let script = std::fs::read_to_string(file).expect("readable script");
        let produced = match replay(&script) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        if produced == script {
            continue;
        }
        if update {
            std::fs::write(file, &produced).expect("writable script");
            continue;
        }
        let first = script
            .lines()
            .zip(produced.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  recorded: {a}\n  produced: {b}", i + 1))
            .unwrap_or_else(|| "the files differ in length".into());
        failures.push(format!("{}: {first}", file.display()));
    }
    assert!(
        failures.is_empty(),
        "golden scripts differ (UPDATE_GOLDEN=1 rewrites them; review the diff):\n{}",
        failures.join("\n")
    );
}
