//! `POST /v1/leases/batch` and the CLI over it, on a real three-node
//! cluster: a thousand grants in one request and one log entry, renewals
//! and revokes with per-item results (a missing lease is refused alone),
//! the same state on every node, malformed batches refused whole with 400
//! and nothing written, and `keel lease grant --count` / `renew ID...` /
//! `revoke ID...`.

use keel_tests::leases::{keel_cli, node_apis, same_everywhere};
use keel_tests::{Api, Cluster, TOKEN};
use serde_json::{Value, json};

async fn commit_index(api: &Api) -> u64 {
    api.get_ok("/v1/cluster").await["commit_index"]
        .as_u64()
        .expect("commit_index")
}

fn statuses(list: &Value) -> Vec<u64> {
    list.as_array()
        .expect("a result list")
        .iter()
        .map(|r| r["status"].as_u64().expect("a status"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_per_item_in_one_entry_on_every_node() {
    let cluster = Cluster::start(3).await;
    let apis = node_apis(&cluster, 3);
    // Through a follower or the leader alike: writes are forwarded.
    let api = &apis[1];
    api.post_expect(
        "/v1/accounts",
        &json!({"name": "small", "limits": {"max_leases": 1}}),
        201,
    )
    .await;

    // A thousand grants in one request.
    let grants: Vec<Value> = (0..1000)
        .map(|i| json!({"ttl": "10m", "name": format!("bulk/{i:04}")}))
        .collect();
    let before = commit_index(api).await;
    let answer = api
        .post_expect("/v1/leases/batch", &json!({"grant": grants}), 200)
        .await;
    let after = commit_index(api).await;
    assert_eq!(answer["succeeded"], 1000, "{:?}", answer["failed"]);
    assert_eq!(answer["failed"], 0);
    assert!(statuses(&answer["grant"]).iter().all(|s| *s == 201));
    // One entry for the batch; the managers may add one or two of their own.
    assert!(
        after - before < 5,
        "a 1000-item batch took {} log entries",
        after - before
    );
    let ids: Vec<String> = answer["grant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lease"]["id"].as_str().expect("an id").to_string())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000, "grant ids are unique");
    for (i, r) in answer["grant"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            r["lease"]["name"],
            format!("bulk/{i:04}"),
            "results keep request order"
        );
    }
    let listed = same_everywhere(&apis, "/v1/leases?prefix=bulk/&limit=1000").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1000));

    // Renewals and revokes, some refused on their own.
    let missing = "00000000000000aa";
    let answer = api
        .post_expect(
            "/v1/leases/batch",
            &json!({
                "grant": [
                    {"ttl": 60, "account": "small"},
                    {"ttl": 60, "account": "small"},
                    {"ttl": 60, "account": "nobody"}
                ],
                "renew": [{"id": ids[0], "increment": "1h"}, {"id": missing}, {"id": ids[1]}],
                "revoke": [ids[2], missing, ids[2]]
            }),
            200,
        )
        .await;
    assert_eq!(statuses(&answer["grant"]), vec![201, 409, 404]);
    assert_eq!(answer["grant"][1]["error"]["code"], "limit_exceeded");
    assert_eq!(answer["grant"][2]["error"]["code"], "account_not_found");
    assert_eq!(statuses(&answer["renew"]), vec![200, 404, 200]);
    assert_eq!(answer["renew"][1]["error"]["code"], "lease_not_found");
    assert_eq!(statuses(&answer["revoke"]), vec![204, 404, 404]);
    assert_eq!(
        (answer["succeeded"].as_u64(), answer["failed"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(answer["renew"][0]["lease"]["ttl"], 600);
    let renewed = same_everywhere(&apis, &format!("/v1/leases/{}", ids[0])).await;
    assert_eq!(renewed["renewals"], 1);
    for a in &apis {
        assert_eq!(
            a.get(&format!("/v1/leases/{}", ids[2]))
                .await
                .unwrap()
                .status,
            404
        );
    }
    assert_eq!(api.get_ok("/v1/accounts/small").await["usage"]["leases"], 1);

    // Malformed batches are refused whole, naming the item, and write
    // nothing.
    let state = same_everywhere(&apis, "/v1/leases?limit=1000").await;
    let too_many: Vec<Value> = (0..1001).map(|_| json!(missing)).collect();
    let bad = [
        json!({"grant": [{"ttl": 60}, {"ttl": 0}]}),
        json!({"grant": [{"ttl": 60, "name": "ok"}, {"ttl": 60, "account": "Bad Name"}]}),
        json!({"renew": [{"id": ids[0]}, {"id": "not-an-id"}]}),
        json!({"renew": [{"id": ids[0], "increment": "2y"}]}),
        json!({"revoke": [ids[3], "xyz"]}),
        json!({"revoke": too_many}),
        json!({"revoke": [ids[3]], "extra": 1}),
        json!({"grant": {"ttl": 60}}),
    ];
    for body in &bad {
        let r = api.post("/v1/leases/batch", body).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{body}: {:?}",
            r.body
        );
    }
    let r = api
        .post("/v1/leases/batch", &json!({"revoke": [ids[3], "xyz"]}))
        .await
        .unwrap();
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("revoke[1]:")),
        "{:?}",
        r.body
    );
    assert_eq!(same_everywhere(&apis, "/v1/leases?limit=1000").await, state);
    // An empty batch is answered and writes nothing.
    let empty = api.post_expect("/v1/leases/batch", &json!({}), 200).await;
    assert_eq!(
        (empty["succeeded"].as_u64(), empty["failed"].as_u64()),
        (Some(0), Some(0))
    );

    // A retry with the same Idempotency-Key answers the first results.
    let body = json!({"grant": [{"ttl": 60, "name": "once"}], "revoke": [ids[4]]});
    let key = [("Idempotency-Key", "batch-retry-1")];
    let first = api
        .send_raw(
            "POST",
            "/v1/leases/batch",
            Some(body.to_string().into_bytes()),
            &key,
        )
        .await
        .unwrap();
    let again = apis[2]
        .send_raw(
            "POST",
            "/v1/leases/batch",
            Some(body.to_string().into_bytes()),
            &key,
        )
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["grant"][0]["lease"]["id"],
        again.body["grant"][0]["lease"]["id"]
    );
    assert_eq!(statuses(&again.body["revoke"]), vec![204]);
    let once = api.get_ok("/v1/leases?prefix=once").await;
    assert_eq!(once["items"].as_array().map(Vec::len), Some(1));

    // The CLI.
    let addr = cluster.node(3).api_addr.clone();
    let out = keel_cli(
        &addr,
        TOKEN,
        &[
            "lease", "grant", "--ttl", "5m", "--name", "cli/many", "--count", "1500", "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(out["succeeded"], 1500);
    let cli_ids: Vec<String> = out["grant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lease"]["id"].as_str().unwrap().to_string())
        .collect();
    let mut args = vec!["lease", "renew", "--increment", "20m"];
    args.extend(cli_ids[..3].iter().map(String::as_str));
    args.push(missing);
    let run = keel_cli(&addr, TOKEN, &args).await;
    assert_eq!(
        run.code,
        Some(1),
        "a refused item fails the command: {run:?}"
    );
    assert!(
        run.stdout.contains("3 succeeded, 1 failed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(missing), "{}", run.stdout);
    let renewed = api.get_ok(&format!("/v1/leases/{}", cli_ids[0])).await;
    assert_eq!(renewed["renewals"], 1);
    let mut args = vec!["lease", "revoke"];
    args.extend(cli_ids.iter().map(String::as_str));
    let run = keel_cli(&addr, TOKEN, &args).await.ok();
    assert!(
        run.stdout.contains("1500 succeeded, 0 failed"),
        "{}",
        run.stdout
    );
    let left = api.get_ok("/v1/leases?prefix=cli/").await;
    assert_eq!(left["items"].as_array().map(Vec::len), Some(0));
}
