//! The operator CLI: a thin client of the admin API. Tables for people,
//! `--json` for scripts; errors print the API's code and message and exit
//! non-zero.

mod http;
mod member_watch;
mod output;
pub mod progress;
pub mod snapshot;
mod warnings;

pub mod account;
pub mod audit;
pub mod cert;
pub mod cluster;
pub mod decommission;
pub mod lease;
mod lease_batch;
pub mod rotate;
pub mod token;

pub use http::{ApiClient, ClientError};

use crate::cli::{ClientArgs, HealthArgs, OperatorOp};

/// `keel health`: 0 if ready (or live), 1 otherwise. No token needed.
pub async fn health(args: &HealthArgs) -> Result<(), ClientError> {
    let client = ApiClient::new(&args.addr, None, args.cacert.as_deref())?;
    let path = if args.live { "/livez" } else { "/readyz" };
    let probe = client.raw_get(path);
    let (status, _) = tokio::time::timeout(std::time::Duration::from_secs(5), probe)
        .await
        .map_err(|_| ClientError::Message(format!("{path} did not answer within 5s")))??;
    if status == 200 {
        Ok(())
    } else {
        Err(ClientError::Message(format!("{path} answered {status}")))
    }
}

/// `keel status`: the cluster as the addressed node sees it.
pub async fn status(args: &ClientArgs) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let mut view = client.get("/v1/cluster").await?;
    let scheme = if args.addr.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let warnings = warnings::collect(&client, &view, scheme, args.cacert.as_deref()).await?;
    if args.json {
        view["warnings"] = serde_json::Value::Array(warnings);
        return output::json(&view);
    }
    println!("cluster  {}", output::text(&view["cluster_id"]));
    println!("node     {}", output::text(&view["node_id"]));
    println!("leader   {}", output::text(&view["leader"]));
    println!("term     {}", output::text(&view["term"]));
    println!(
        "index    committed {} applied {}",
        output::text(&view["commit_index"]),
        output::text(&view["applied_index"])
    );
    println!();
    cluster::print_members(&view);
    println!();
    warnings::print(&warnings);
    Ok(())
}

/// `keel operator ...`.
pub async fn operator(args: &ClientArgs, op: &OperatorOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let path = match op {
        OperatorOp::Seal => "/v1/sys/seal",
        OperatorOp::Unseal => "/v1/sys/unseal",
        OperatorOp::Reload => "/v1/sys/reload",
        OperatorOp::Snapshot { op } => return snapshot::run(&client, op, args.json).await,
    };
    let answer = client.post(path, None).await?;
    if args.json {
        return output::json(&answer);
    }
    match op {
        OperatorOp::Seal | OperatorOp::Unseal => {
            println!("sealed: {}", output::text(&answer["sealed"]))
        }
        OperatorOp::Snapshot { .. } => {}
        OperatorOp::Reload => {
            let changes = answer["changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                println!("reloaded: nothing changed");
            } else {
                for c in changes {
                    println!("reloaded: {}", output::text(&c));
                }
            }
        }
    }
    Ok(())
}
