//! The README's first command: `keel server --dev` is a single-node cluster
//! that reports ready and stays ready while idle (a sole voter is its own
//! quorum; nothing ever acknowledges it), prints a token that works, and
//! serves a write.

use std::time::{Duration, Instant};

use keel_tests::Api;
use keel_tests::{Node, eventually, free_port};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn dev_node_is_ready_and_stays_ready_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (api, peer) = (free_port(), free_port());
    let data = dir.path().join("keel-data");
    let args: Vec<String> = vec![
        "server".into(),
        "--dev".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--api-listen".into(),
        format!("127.0.0.1:{api}"),
        "--peer-listen".into(),
        format!("127.0.0.1:{peer}"),
    ];
    let mut node = Node::new(
        1,
        format!("127.0.0.1:{api}"),
        format!("127.0.0.1:{peer}"),
        data,
        dir.path().join("dev.log"),
        args,
        String::new(),
    );
    node.spawn();
    let anon = Api::new(&node.api_addr, None);
    eventually(Duration::from_secs(60), "the dev node ready", || {
        let anon = anon.clone();
        async move {
            let r = anon.get("/readyz?verbose").await?;
            (r.status == 200).then_some(()).ok_or(r.body.to_string())
        }
    })
    .await;
    // Idle for several quorum windows (2 x the 600 ms election timeout):
    // readiness must not lapse.
    let until = Instant::now() + Duration::from_secs(4);
    let mut probes = 0;
    while Instant::now() < until {
        let r = anon.get("/readyz?verbose").await.expect("readyz");
        assert_eq!(r.status, 200, "dev node stopped being ready: {}", r.body);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The printed token works.
    let log = node.log();
    let token = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Token:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no token in the banner:\n{log}"))
        .to_string();
    let api = anon.with_token(&token);
    api.post_expect("/v1/leases", &json!({"ttl": "30s"}), 201)
        .await;
    println!("dev node: ready, and stayed ready for {probes} probes over 4 s idle");
}
