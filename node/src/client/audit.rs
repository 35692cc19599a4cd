//! `keel audit verify FILE...`: checks the audit log's hash chain on local
//! files (no node is contacted) and names the first broken or missing link.

use keel_web::audit::verify::{Broken, verify};
use serde_json::json;

use crate::cli::AuditOp;

/// Runs an audit subcommand; `Err` (exit 1) when the chain is broken.
pub fn run(op: &AuditOp) -> Result<(), String> {
    let AuditOp::Verify { files, json } = op;
    match verify(files) {
        Ok(report) => {
            if *json {
                println!("{}", json!({"ok": true, "verified": report}));
            } else {
                let range = match (report.first_seq, report.last_seq) {
                    (Some(a), Some(b)) => format!("seq {a}..={b}"),
                    _ => "no lines".to_string(),
                };
                let start = if report.from_genesis || report.lines == 0 {
                    ""
                } else {
                    " (starts after lines not given: older files rotated away or left out)"
                };
                println!(
                    "ok: {} lines in {} files, {range}{start}",
                    report.lines, report.files
                );
            }
            Ok(())
        }
        Err(broken) => {
            if *json {
                println!("{}", json!({"ok": false, "broken": broken}));
                Err("the audit chain is broken".into())
            } else {
                Err(describe(&broken))
            }
        }
    }
}

fn describe(broken: &Broken) -> String {
    format!("the audit chain is broken at {broken}")
}
