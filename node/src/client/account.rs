//! `keel account ...`.

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{ApiClient, encode, query};
use super::{ClientError, output};
use crate::cli::{AccountOp, ClientArgs};

fn print(v: &Value) {
    output::record(
        v,
        &["name", "state", "expires_at", "created_at", "updated_at"],
    );
    println!(
        "{:<10}  leases {} certificates {}",
        "limits",
        output::text(&v["limits"]["max_leases"]),
        output::text(&v["limits"]["max_certificates"])
    );
    println!(
        "{:<10}  leases {} certificates {}",
        "usage",
        output::text(&v["usage"]["leases"]),
        output::text(&v["usage"]["certificates"])
    );
}

/// `none` clears; anything else must be a number.
fn limit(flag: &str, v: &str) -> Result<Value, ClientError> {
    if v == "none" {
        return Ok(Value::Null);
    }
    v.parse::<u64>()
        .map(|n| json!(n))
        .map_err(|_| ClientError::Message(format!("{flag} must be a number or `none`")))
}

/// Runs an account subcommand.
pub async fn run(args: &ClientArgs, op: &AccountOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let answer = match op {
        AccountOp::Create {
            name,
            expires_at,
            max_leases,
            max_certificates,
        } => {
            let body = json!({
                "name": name,
                "expires_at": expires_at,
                "limits": {"max_leases": max_leases, "max_certificates": max_certificates},
            });
            client.post("/v1/accounts", Some(body)).await?
        }
        AccountOp::Get { name } => {
            client
                .get(&format!("/v1/accounts/{}", encode(name)))
                .await?
        }
        AccountOp::List { state } => {
            let page = client
                .get(&format!(
                    "/v1/accounts{}",
                    query(&[("state", state.clone())])
                ))
                .await?;
            if args.json {
                return output::json(&page);
            }
            output::items(
                &page,
                &["name", "state", "expires_at"],
                &["name", "state", "expires_at"],
            );
            return Ok(());
        }
        AccountOp::Update {
            name,
            expires_at,
            max_leases,
            max_certificates,
        } => {
            let mut body = json!({});
            if let Some(e) = expires_at {
                body["expires_at"] = if e == "none" { Value::Null } else { json!(e) };
            }
            let mut limits = json!({});
            if let Some(m) = max_leases {
                limits["max_leases"] = limit("--max-leases", m)?;
            }
            if let Some(m) = max_certificates {
                limits["max_certificates"] = limit("--max-certificates", m)?;
            }
            body["limits"] = limits;
            client
                .request(
                    Method::PATCH,
                    &format!("/v1/accounts/{}", encode(name)),
                    Some(body),
                )
                .await?
        }
        AccountOp::Disable { name } => {
            client
                .post(&format!("/v1/accounts/{}/disable", encode(name)), None)
                .await?
        }
        AccountOp::Enable { name } => {
            client
                .post(&format!("/v1/accounts/{}/enable", encode(name)), None)
                .await?
        }
        AccountOp::Delete { name } => {
            let answer = client
                .request(
                    Method::DELETE,
                    &format!("/v1/accounts/{}", encode(name)),
                    None,
                )
                .await?;
            if args.json {
                return output::json(&answer);
            }
            println!(
                "deleted {name}; revoked {}",
                output::text(&answer["revoked"])
            );
            return Ok(());
        }
    };
    if args.json {
        return output::json(&answer);
    }
    print(&answer);
    Ok(())
}
