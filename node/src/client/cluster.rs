//! `keel cluster ...`.

use serde_json::{Value, json};

use super::http::ApiClient;
use super::{ClientError, output};
use crate::cli::{ClientArgs, ClusterOp};

/// Prints the members table of a cluster view.
pub fn print_members(view: &Value) {
    let rows: Vec<Vec<String>> = view["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    [
                        "id",
                        "role",
                        "state",
                        "api_addr",
                        "peer_addr",
                        "match_index",
                        "lag",
                    ]
                    .iter()
                    .map(|f| output::text(&m[*f]))
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    output::table(
        &["id", "role", "state", "api", "peer", "match", "lag"],
        &rows,
    );
}

/// Runs a cluster subcommand.
pub async fn run(args: &ClientArgs, op: &ClusterOp) -> Result<(), ClientError> {
    let client = ApiClient::from_args(args)?;
    let view = match op {
        ClusterOp::Members => client.get("/v1/cluster").await?,
        ClusterOp::Add {
            id,
            api_addr,
            peer_addr,
            learner,
        } => {
            let body =
                json!({"id": id, "api_addr": api_addr, "peer_addr": peer_addr, "voter": !learner});
            client.post("/v1/cluster/members", Some(body)).await?
        }
        ClusterOp::Remove { id } => {
            client
                .request(
                    reqwest::Method::DELETE,
                    &format!("/v1/cluster/members/{id}"),
                    None,
                )
                .await?
        }
        ClusterOp::TransferLeader { to } => {
            let body = to.map(|to| json!({"to": to}));
            client.post("/v1/cluster/transfer-leader", body).await?
        }
    };
    if args.json {
        return output::json(&view);
    }
    println!(
        "leader {}  term {}",
        output::text(&view["leader"]),
        output::text(&view["term"])
    );
    print_members(&view);
    Ok(())
}
