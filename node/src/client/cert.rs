//! `keel cert ...`.

use std::io::Write;

use serde_json::{Value, json};

use super::http::{ApiClient, encode, query};
use super::{ClientError, output, rotate};
use crate::cli::{CertOp, ClientArgs};

const FIELDS: [&str; 10] = [
    "serial",
    "common_name",
    "dns_names",
    "ip_addresses",
    "account",
    "state",
    "not_before",
    "not_after",
    "replaces",
    "replaced_by",
];

fn duration(s: &str) -> Value {
    match s.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    }
}

/// Runs a cert subcommand.
pub async fn run(args: &ClientArgs, op: &CertOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let answer = match op {
        CertOp::Ca { peer: true } => {
            let cas = client.get("/v1/sys/peer-ca").await?;
            if args.json {
                return output::json(&cas);
            }
            for ca in cas["cas"].as_array().cloned().unwrap_or_default() {
                let role = if ca["signing"] == true {
                    "signing"
                } else {
                    "trusted"
                };
                println!(
                    "# {role}, sha256 {}, until {}",
                    output::text(&ca["fingerprint"]),
                    output::text(&ca["not_after"])
                );
                print!("{}", output::text(&ca["certificate"]));
            }
            return Ok(());
        }
        CertOp::Ca { peer: false } => {
            let ca = client.get("/v1/pki/ca").await?;
            if args.json {
                return output::json(&ca);
            }
            print!("{}", output::text(&ca["certificate"]));
            return Ok(());
        }
        CertOp::Issue {
            common_name,
            dns_names,
            ip_addresses,
            ttl,
            account,
            out_dir,
        } => {
            let body = json!({
                "common_name": common_name,
                "dns_names": dns_names,
                "ip_addresses": ip_addresses,
                "ttl": duration(ttl),
                "account": account,
            });
            let issued = client.post("/v1/pki/issue", Some(body)).await?;
            if let Some(dir) = out_dir {
                std::fs::create_dir_all(dir)?;
                let write = |name: &str, text: &str, mode: u32| {
                    rotate::write_atomic(&dir.join(name), text.as_bytes(), mode)
                };
                write(
                    "cert.pem",
                    issued["certificate"].as_str().unwrap_or_default(),
                    0o644,
                )?;
                write(
                    "key.pem",
                    issued["private_key"].as_str().unwrap_or_default(),
                    0o600,
                )?;
                write(
                    "ca.pem",
                    issued["ca_certificate"].as_str().unwrap_or_default(),
                    0o644,
                )?;
                eprintln!("wrote cert.pem, key.pem and ca.pem to {}", dir.display());
            } else if !args.json {
                print!("{}", output::text(&issued["certificate"]));
                print!("{}", output::text(&issued["private_key"]));
                return Ok(());
            }
            issued
        }
        CertOp::Sign { csr, ttl, account } => {
            let pem = std::fs::read_to_string(csr)
                .map_err(|e| ClientError::Message(format!("{}: {e}", csr.display())))?;
            let body = json!({"csr": pem, "ttl": duration(ttl), "account": account});
            let signed = client.post("/v1/pki/sign", Some(body)).await?;
            if !args.json {
                print!("{}", output::text(&signed["certificate"]));
                return Ok(());
            }
            signed
        }
        CertOp::Get { serial } => {
            client
                .get(&format!("/v1/pki/certs/{}", encode(serial)))
                .await?
        }
        CertOp::List { account, state } => {
            let page = client
                .get(&format!(
                    "/v1/pki/certs{}",
                    query(&[("account", account.clone()), ("state", state.clone())])
                ))
                .await?;
            if args.json {
                return output::json(&page);
            }
            output::items(
                &page,
                &["serial", "common_name", "account", "state", "not_after"],
                &["serial", "common_name", "account", "state", "not_after"],
            );
            return Ok(());
        }
        CertOp::Renew { cert, key, ca, ttl } => {
            let outcome = rotate::run(&client, cert, key, ca.as_deref(), ttl.as_deref()).await?;
            if args.json {
                return output::json(&outcome);
            }
            println!(
                "rotated: {} -> {} (old certificate superseded)",
                output::text(&outcome["old_serial"]),
                output::text(&outcome["new_serial"])
            );
            return Ok(());
        }
        CertOp::Revoke { serial, reason } => {
            let body = reason.as_ref().map(|r| json!({"reason": r}));
            client
                .post(&format!("/v1/pki/certs/{}/revoke", encode(serial)), body)
                .await?
        }
        CertOp::Crl { format } => {
            let bytes = client
                .request_bytes(
                    reqwest::Method::GET,
                    &format!("/v1/pki/crl?format={}", encode(format)),
                    None,
                )
                .await?;
            std::io::stdout().write_all(&bytes)?;
            return Ok(());
        }
    };
    if args.json {
        return output::json(&answer);
    }
    output::record(&answer, &FIELDS);
    Ok(())
}
