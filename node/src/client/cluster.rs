//! `keel cluster ...`.

use serde_json::{Value, json};

use super::http::ApiClient;
use super::member_watch::Watch;
use super::{ClientError, output};
use crate::cli::{ClientArgs, ClusterOp};

/// Prints the members table of a cluster view, with each member's health
/// as the answering node sees it (lag on the leader only).
pub fn print_members(view: &Value) {
    let ms = |v: &Value| match v.as_i64() {
        Some(n) => format!("{n} ms"),
        None => "-".into(),
    };
    let rows: Vec<Vec<String>> = view["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    let mut row: Vec<String> =
                        ["id", "role", "state", "api_addr", "peer_addr", "lag"]
                            .iter()
                            .map(|f| output::text(&m[*f]))
                            .collect();
                    row.push(ms(&m["last_contact_ms"]));
                    row.push(match m["clock_offset_ms"].as_i64() {
                        Some(n) => format!("{n:+} ms"),
                        None => "-".into(),
                    });
                    row.push(output::text(&m["version"]));
                    row
                })
                .collect()
        })
        .unwrap_or_default();
    output::table(
        &[
            "id",
            "role",
            "state",
            "api",
            "peer",
            "lag",
            "last contact",
            "clock offset",
            "version",
        ],
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
            // The leader answers once the node caught up (and was
            // promoted): show it catching up meanwhile.
            let watch = Watch::start(&format!("adding node {id}"));
            let view = watch
                .follow(&client, *id, client.post("/v1/cluster/members", Some(body)))
                .await?;
            watch.line("done");
            view
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
        ClusterOp::Decommission { id, force } => {
            return super::decommission::run(&client, args.json, *id, *force).await;
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
