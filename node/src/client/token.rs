//! `keel token ...`.

use reqwest::Method;
use serde_json::json;

use super::http::{ApiClient, encode};
use super::lease::duration;
use super::{ClientError, output};
use crate::cli::{ClientArgs, TokenOp};

const FIELDS: [&str; 9] = [
    "accessor",
    "role",
    "account",
    "name",
    "created_by",
    "ttl",
    "issued_at",
    "expires_at",
    "hard_expires_at",
];

/// Runs a token subcommand.
pub async fn run(args: &ClientArgs, op: &TokenOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let answer = match op {
        TokenOp::Create {
            role,
            account,
            ttl,
            max_ttl,
            name,
        } => {
            let mut body = json!({"role": role, "ttl": duration(ttl)});
            if let Some(a) = account {
                body["account"] = json!(a);
            }
            if let Some(m) = max_ttl {
                body["max_ttl"] = duration(m);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            let created = client.post("/v1/auth/tokens", Some(body)).await?;
            if args.json {
                return output::json(&created);
            }
            output::record(&created, &FIELDS);
            // The only time the secret is shown.
            println!("{:<15}  {}", "secret", output::text(&created["secret"]));
            return Ok(());
        }
        TokenOp::List => {
            let page = client.get("/v1/auth/tokens").await?;
            if args.json {
                return output::json(&page);
            }
            output::items(
                &page,
                &["accessor", "role", "account", "name", "expires_at"],
                &["accessor", "role", "account", "name", "expires_at"],
            );
            return Ok(());
        }
        TokenOp::Lookup { accessor } if accessor == "self" => {
            client.post("/v1/auth/tokens/self", None).await?
        }
        TokenOp::Lookup { accessor } => {
            client
                .get(&format!("/v1/auth/tokens/{}", encode(accessor)))
                .await?
        }
        TokenOp::Renew { increment } => {
            let body = increment
                .as_ref()
                .map(|i| json!({"increment": duration(i)}));
            client.post("/v1/auth/tokens/self/renew", body).await?
        }
        TokenOp::Revoke { accessor } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/v1/auth/tokens/{}", encode(accessor)),
                    None,
                )
                .await?;
            if !args.json {
                println!("revoked {accessor}");
            }
            return Ok(());
        }
    };
    if args.json {
        return output::json(&answer);
    }
    output::record(&answer, &FIELDS);
    Ok(())
}
