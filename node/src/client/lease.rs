//! `keel lease ...`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{ApiClient, encode, query};
use super::lease_batch as batch;
use super::{ClientError, output};
use crate::cli::{ClientArgs, LeaseOp};

const FIELDS: [&str; 12] = [
    "id",
    "name",
    "account",
    "state",
    "ttl",
    "max_ttl",
    "remaining_ttl",
    "issued_at",
    "expires_at",
    "hard_expires_at",
    "renewals",
    "metadata",
];

/// A duration flag as the API takes it: a bare number is seconds.
pub(crate) fn duration(s: &str) -> Value {
    match s.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    }
}

/// Runs a lease subcommand.
pub async fn run(args: &ClientArgs, op: &LeaseOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let answer = match op {
        LeaseOp::Grant {
            ttl,
            max_ttl,
            name,
            account,
            metadata,
            count,
        } => {
            let mut meta = BTreeMap::new();
            for entry in metadata {
                let (k, v) = entry.split_once('=').ok_or_else(|| {
                    ClientError::Message(format!("--meta `{entry}` must be key=value"))
                })?;
                meta.insert(k.to_string(), v.to_string());
            }
            let mut body = json!({"ttl": duration(ttl), "metadata": meta});
            if let Some(m) = max_ttl {
                body["max_ttl"] = duration(m);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(a) = account {
                body["account"] = json!(a);
            }
            if *count > 1 {
                let items = vec![body; *count as usize];
                return batch::run(&client, args.json, "grant", items).await;
            }
            client.post("/v1/leases", Some(body)).await?
        }
        LeaseOp::Get { id } => client.get(&format!("/v1/leases/{}", encode(id))).await?,
        LeaseOp::List {
            prefix,
            account,
            state,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("prefix", prefix.clone()),
                ("account", account.clone()),
                ("state", state.clone()),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor.clone()),
            ]);
            let page = client.get(&format!("/v1/leases{q}")).await?;
            if args.json {
                return output::json(&page);
            }
            output::items(
                &page,
                &["id", "name", "account", "state", "remaining", "expires_at"],
                &[
                    "id",
                    "name",
                    "account",
                    "state",
                    "remaining_ttl",
                    "expires_at",
                ],
            );
            return Ok(());
        }
        LeaseOp::Renew { ids, increment } => {
            if ids.len() > 1 {
                let items = ids
                    .iter()
                    .map(|id| match increment {
                        Some(i) => json!({"id": id, "increment": duration(i)}),
                        None => json!({"id": id}),
                    })
                    .collect();
                return batch::run(&client, args.json, "renew", items).await;
            }
            let id = &ids[0];
            let body = increment
                .as_ref()
                .map(|i| json!({"increment": duration(i)}));
            client
                .post(&format!("/v1/leases/{}/renew", encode(id)), body)
                .await?
        }
        LeaseOp::Revoke { ids } => {
            if ids.len() > 1 {
                let items = ids.iter().map(|id| json!(id)).collect();
                return batch::run(&client, args.json, "revoke", items).await;
            }
            let id = &ids[0];
            client
                .request(Method::DELETE, &format!("/v1/leases/{}", encode(id)), None)
                .await?;
            if !args.json {
                println!("revoked {id}");
            }
            return Ok(());
        }
        LeaseOp::RevokePrefix { prefix } => {
            let answer = client
                .post("/v1/leases/revoke-prefix", Some(json!({"prefix": prefix})))
                .await?;
            if args.json {
                return output::json(&answer);
            }
            println!("revoked {}", output::text(&answer["revoked"]));
            return Ok(());
        }
    };
    if args.json {
        return output::json(&answer);
    }
    output::record(&answer, &FIELDS);
    Ok(())
}
