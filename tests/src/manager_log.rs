//! Reads a node's log for lesson 1 ("join, don't just signal"): once the
//! supervisor has logged `managers stopped`, no leader-only manager
//! (expiration, accounts, housekeeping) may log anything until the
//! supervisor logs `leader: managers started` again. A line logged after
//! the stop returned means a manager outlived the stop that should have
//! awaited it: the OpenBao #1290 bug class.
//!
//! The supervisor spawns the managers and then logs that it started them,
//! so a manager's first lines may land a hair *before* that start line.
//! Lines seen while stopped are therefore held as pending and accepted only
//! if the start line follows within [`START_SLACK_MS`]; a stop, a new
//! process, the end of the log or a late start line turns them into
//! violations.

use crate::leases::parse_time;

/// How long before the supervisor's start line a manager may log.
pub const START_SLACK_MS: u64 = 100;

/// What a node's log says about its managers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ManagerLog {
    /// `leader: managers started` lines.
    pub starts: usize,
    /// Supervisor `managers stopped` lines.
    pub stops: usize,
    /// Stops that had to abort managers at the deadline.
    pub aborted: usize,
    /// Process starts seen (`configuration loaded`).
    pub processes: usize,
}

/// One parsed log line.
struct Line<'a> {
    ts: Option<u64>,
    target: &'a str,
    rest: &'a str,
}

/// Splits `<time> <LEVEL> [spans:] <target>: <message and fields>`. Spans
/// (`request{request_id=.. method=POST route=/v1/sys/seal}:`) may hold
/// spaces, so the target is the first word that looks like a module path.
fn parse(line: &str) -> Option<Line<'_>> {
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let ts = words.next()?;
    let _level = words.next()?;
    let is_target = |w: &str| {
        w.len() > 1
            && w.ends_with(':')
            && w[..w.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':')
    };
    let target = words.find(|w| is_target(w))?;
    let at = line.find(&format!(" {target} "))? + target.len() + 2;
    Some(Line {
        ts: parse_time(ts).ok(),
        target: target.strip_suffix(':')?,
        rest: &line[at..],
    })
}

/// Lines of a log that report a panic.
pub fn panics(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("panicked"))
        .map(str::to_string)
        .collect()
}

/// Checks that no manager logged between a supervisor stop and the next
/// start. Returns the counts, or every offending line.
pub fn check_manager_log(log: &str) -> Result<ManagerLog, String> {
    let mut report = ManagerLog::default();
    let mut running = false;
    let mut pending: Vec<(Option<u64>, &str)> = Vec::new();
    let mut violations: Vec<String> = Vec::new();
    let flush =
        |pending: &mut Vec<(Option<u64>, &str)>, violations: &mut Vec<String>, why: &str| {
            for (_, line) in pending.drain(..) {
                violations.push(format!("{why}: {line}"));
            }
        };
    for raw in log.lines() {
        let Some(line) = parse(raw) else { continue };
        if line.target == "keel_node::lifecycle::start"
            && line.rest.starts_with("configuration loaded")
        {
            flush(
                &mut pending,
                &mut violations,
                "manager line after its stop, before the process ended",
            );
            report.processes += 1;
            running = false;
        } else if line.target == "keel_node::managers"
            && line.rest.starts_with("leader: managers started")
        {
            for (ts, l) in pending.drain(..) {
                let close = matches!((ts, line.ts), (Some(a), Some(b)) if b >= a && b - a <= START_SLACK_MS);
                if !close {
                    violations.push(format!(
                        "manager line while stopped (not just before a start): {l}"
                    ));
                }
            }
            report.starts += 1;
            running = true;
        } else if line.target == "keel_node::managers" && line.rest.starts_with("managers stopped")
        {
            flush(
                &mut pending,
                &mut violations,
                "manager line after `managers stopped`",
            );
            report.stops += 1;
            running = false;
        } else if line.target == "keel_node::managers" && line.rest.contains("aborting them") {
            report.aborted += 1;
        } else if line.target.starts_with("keel_node::managers::")
            && line.rest.contains("manager=")
            && !running
        {
            pending.push((line.ts, raw));
        }
    }
    flush(
        &mut pending,
        &mut violations,
        "manager line after `managers stopped` (end of log)",
    );
    if violations.is_empty() {
        Ok(report)
    } else {
        Err(violations.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str =
        "2026-11-21T06:49:46.000000Z  INFO keel_node::managers: leader: managers started";
    const STOP: &str = "2026-11-21T06:49:50.000000Z  INFO keel_node::managers: managers stopped";

    fn mgr(ts: &str, msg: &str) -> String {
        format!(
            "2026-11-21T06:49:{ts}Z  INFO keel_node::managers::expiration: {msg} manager=\"expiration\""
        )
    }

    #[test]
    fn accepts_lines_inside_a_run_and_just_before_a_start() {
        let log = [
            "2026-11-21T06:49:45.000000Z  INFO keel_node::lifecycle::start: configuration loaded and validated phase=\"config\"".to_string(),
            mgr("45.990000", "started"),
            START.to_string(),
            mgr("47.000000", "stopping"),
            STOP.to_string(),
        ]
        .join("\n");
        let r = check_manager_log(&log).unwrap();
        assert_eq!((r.starts, r.stops, r.processes), (1, 1, 1));
    }

    #[test]
    fn reads_lines_inside_request_spans() {
        let log = [
            START.to_string(),
            "2026-11-21T06:55:13.537010Z  INFO request{request_id=3e4c method=POST route=/v1/sys/seal}: keel_node::managers: managers stopped".to_string(),
            mgr("51.000000", "stopping"),
        ]
        .join("\n");
        assert!(check_manager_log(&log).is_err());
    }

    #[test]
    fn refuses_a_line_after_the_stop() {
        let log = [
            START.to_string(),
            STOP.to_string(),
            mgr("51.000000", "expired a batch"),
        ]
        .join("\n");
        assert!(check_manager_log(&log).is_err());
        let log = [
            START.to_string(),
            STOP.to_string(),
            mgr("51.000000", "expired a batch"),
            "2026-11-21T06:49:59.000000Z  INFO keel_node::managers: leader: managers started"
                .to_string(),
        ]
        .join("\n");
        assert!(check_manager_log(&log).is_err());
    }
}
