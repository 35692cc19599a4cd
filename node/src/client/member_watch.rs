//! Progress for membership operations that the leader works through while
//! the CLI waits (adding a node that must catch up, decommissioning one):
//! the cluster is polled and every change in the member's role, state and
//! lag is printed as a line on stderr, so `--json` output stays clean.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::ApiClient;
use super::{ClientError, output};

/// How often the cluster is polled for progress.
const POLL: Duration = Duration::from_millis(500);

/// Times and prints progress lines for one operation.
pub struct Watch {
    started: Instant,
}

impl Watch {
    /// Starts timing, with a first line.
    pub fn start(line: &str) -> Self {
        let watch = Watch {
            started: Instant::now(),
        };
        watch.line(line);
        watch
    }

    /// One progress line.
    pub fn line(&self, line: &str) {
        eprintln!("[{:>5.1}s] {line}", self.started.elapsed().as_secs_f64());
    }

    /// Awaits `call`, printing what changes for member `id` meanwhile.
    pub async fn follow(
        &self,
        client: &ApiClient,
        id: u64,
        call: impl Future<Output = Result<Value, ClientError>>,
    ) -> Result<Value, ClientError> {
        tokio::pin!(call);
        let mut ticker = tokio::time::interval(POLL);
        let mut last = String::new();
        loop {
            tokio::select! {
                r = &mut call => return r,
                _ = ticker.tick() => {
                    // The member itself may be the node asked, and stop
                    // midway: progress is best effort, the answer counts.
                    if let Ok(view) = client.get("/v1/cluster").await {
                        let now = stage(&view, id);
                        if now != last {
                            self.line(&now);
                            last = now;
                        }
                    }
                }
            }
        }
    }
}

/// What the progress lines describe: the leader and the member's role,
/// state and lag (entries behind the leader, as the leader sees it).
fn stage(view: &Value, id: u64) -> String {
    let leader = output::text(&view["leader"]);
    let member = view["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"].as_u64() == Some(id)));
    match member {
        Some(m) => format!(
            "leader {leader}; node {id} is a {} ({}), {} entries behind",
            output::text(&m["role"]),
            output::text(&m["state"]),
            output::text(&m["lag"])
        ),
        None => format!("leader {leader}; node {id} is not a member"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stage_names_the_member_role_state_and_lag() {
        let view = json!({"leader": 1, "members": [
            {"id": 1, "role": "voter", "state": "leader", "lag": 0},
            {"id": 4, "role": "learner", "state": "learner", "lag": 1200},
        ]});
        assert_eq!(
            stage(&view, 4),
            "leader 1; node 4 is a learner (learner), 1200 entries behind"
        );
        assert_eq!(stage(&view, 5), "leader 1; node 5 is not a member");
    }
}
