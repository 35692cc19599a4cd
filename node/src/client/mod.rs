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
    let mut view = match client.get("/v1/cluster").await {
        Err(ClientError::Api { code, .. }) if code == "sealed" => {
            return print_sealed(&client, args.json).await;
        }
        other => other?,
    };
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
    let (path, body) = match op {
        OperatorOp::Seal => ("/v1/sys/seal", None),
        OperatorOp::Unseal { share } => ("/v1/sys/unseal", unseal_body(share.as_deref())?),
        OperatorOp::Init {
            key_shares,
            key_threshold,
        } => (
            "/v1/sys/init",
            Some(serde_json::json!({"key_shares": key_shares, "key_threshold": key_threshold})),
        ),
        OperatorOp::RotateKey => ("/v1/sys/rotate-key", None),
        OperatorOp::JoinToken {
            op: crate::cli::JoinTokenOp::Create { ttl },
        } => (
            "/v1/sys/join-token",
            Some(serde_json::json!({ "ttl": ttl })),
        ),
        OperatorOp::PeerCa {
            op: crate::cli::PeerCaOp::Rotate { step },
        } => (
            "/v1/sys/peer-ca/rotate",
            Some(serde_json::json!({ "step": step })),
        ),
        OperatorOp::Reload => ("/v1/sys/reload", None),
        OperatorOp::Snapshot { op } => return snapshot::run(&client, op, args.json).await,
    };
    let answer = client.post(path, body).await?;
    if args.json {
        return output::json(&answer);
    }
    match op {
        OperatorOp::Seal | OperatorOp::Unseal { .. } => println!(
            "sealed: {}  progress: {}/{}",
            output::text(&answer["sealed"]),
            output::text(&answer["progress"]),
            output::text(&answer["threshold"])
        ),
        OperatorOp::Init { .. } => {
            for (i, key) in answer["keys"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                println!("key share {}: {}", i + 1, output::text(key));
            }
            println!();
            println!(
                "{} of these unseal a node. keel keeps none of them: give each to a different person.",
                output::text(&answer["key_threshold"])
            );
        }
        OperatorOp::RotateKey => println!(
            "keyring rotated: new writes use key {} ({} keys)",
            output::text(&answer["key_id"]),
            output::text(&answer["keys"])
        ),
        OperatorOp::JoinToken { .. } => {
            println!("token:           {}", output::text(&answer["token"]));
            println!(
                "peer CA sha256:  {}",
                output::text(&answer["ca_fingerprint"])
            );
            println!("expires:         {}", output::text(&answer["expires_at"]));
            println!();
            println!(
                "Start the new node with --join <peer address> --join-token <token>; it works once."
            );
        }
        OperatorOp::PeerCa { .. } => {
            for ca in answer["cas"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{}  sha256 {}  until {}",
                    if ca["signing"] == true {
                        "signing"
                    } else {
                        "trusted"
                    },
                    output::text(&ca["fingerprint"]),
                    output::text(&ca["not_after"])
                );
            }
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

/// The unseal body: a share from the argument or stdin (`-`), or none.
fn unseal_body(share: Option<&str>) -> Result<Option<serde_json::Value>, ClientError> {
    let share = match share {
        None => return Ok(None),
        Some("-") => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| {
                ClientError::Message(format!("reading the key share from stdin: {e}"))
            })?;
            line.trim().to_string()
        }
        Some(s) => s.to_string(),
    };
    Ok(Some(serde_json::json!({"share": share})))
}

/// `keel status` of a sealed node: its seal, since it has no cluster view.
async fn print_sealed(client: &ApiClient, json: bool) -> Result<(), ClientError> {
    let seal = client.get("/v1/sys/seal-status").await?;
    if json {
        return output::json(&serde_json::json!({"seal": seal}));
    }
    println!("sealed   true");
    println!(
        "unseal   {} of {} key shares given ({})",
        output::text(&seal["progress"]),
        output::text(&seal["threshold"]),
        output::text(&seal["kind"])
    );
    println!();
    println!(
        "! sealed: this node runs no Raft and serves nothing; `keel operator unseal` unseals it"
    );
    Ok(())
}
