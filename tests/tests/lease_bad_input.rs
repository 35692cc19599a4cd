//! Bad lease input gets a 4xx with keel's JSON error body and changes
//! nothing, on any node: TTLs that are zero, negative, absurd (over a year)
//! or unparseable (a `ttl` above `max_ttl` is capped, not refused); unknown ids (404
//! `lease_not_found`) and malformed ones (400); bad renewals, prefixes,
//! metadata and list queries; a body over the limit (413). Query strings
//! the extractor cannot parse at all must get the JSON error body too.

use keel_tests::leases::{node_apis, same_everywhere, without_clock};
use keel_tests::{Api, Cluster};
use serde_json::{Value, json};

/// Clients of nodes 1..=3.
fn apis(cluster: &Cluster) -> Vec<Api> {
    node_apis(cluster, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lease_input_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.api(if leader == 3 { 2 } else { 3 });
    let apis = apis(&cluster);
    let keep = follower
        .post_expect(
            "/v1/leases",
            &json!({"ttl": 300, "max_ttl": 600, "name": "keep"}),
            201,
        )
        .await;
    let keep_id = keep["id"].as_str().unwrap().to_string();
    let snapshot = same_everywhere(&apis, "/v1/leases").await;

    let expect_400 = |r: keel_tests::Reply, what: &str| {
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{what}: {:?}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {:?}",
            r.body
        );
    };
    let bad_grants = [
        json!({"ttl": 0}),
        json!({"ttl": "0s"}),
        json!({"ttl": "500ms"}),
        json!({"ttl": -5}),
        json!({"ttl": "-5s"}),
        json!({"ttl": 31_536_001}),
        json!({"ttl": "8761h"}),
        json!({"ttl": "400d"}),
        json!({"ttl": 18_446_744_073_709_551_615u64}),
        json!({"ttl": "99999999999999999999"}),
        json!({"ttl": "soon"}),
        json!({"ttl": "5x"}),
        json!({"ttl": ""}),
        json!({"ttl": 1.5}),
        json!({"ttl": null}),
        json!({"ttl": true}),
        json!({}),
        json!({"ttl": 60, "max_ttl": "9000h"}),
        json!({"ttl": 60, "max_ttl": 0}),
        json!({"ttl": 60, "name": ""}),
        json!({"ttl": 60, "name": "a\u{7}b"}),
        json!({"ttl": 60, "bogus": 1}),
    ];
    for body in &bad_grants {
        for api in [&follower, &cluster.api(leader)] {
            expect_400(
                api.post("/v1/leases", body).await.unwrap(),
                &format!("grant {body}"),
            );
        }
    }
    for raw in [b"ttl=5".to_vec(), b"{\"ttl\": 5".to_vec(), Vec::new()] {
        let r = follower
            .send_raw("POST", "/v1/leases", Some(raw.clone()), &[])
            .await
            .unwrap();
        expect_400(
            r,
            &format!("grant body {:?}", String::from_utf8_lossy(&raw)),
        );
    }
    // Metadata beyond its bounds.
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    for metadata in [
        json!(many),
        json!({"": "v"}),
        json!({"k": "v".repeat(1025)}),
        json!({"k": 5}),
    ] {
        let body = json!({"ttl": 60, "metadata": metadata});
        expect_400(
            follower.post("/v1/leases", &body).await.unwrap(),
            "grant with bad metadata",
        );
    }
    // A body over the 1 MiB limit.
    let huge = json!({"ttl": 60, "name": "x".repeat(2 << 20)});
    let r = follower.post("/v1/leases", &huge).await.unwrap();
    assert_eq!(
        (r.status, r.code()),
        (413, "payload_too_large"),
        "{:?}",
        r.body
    );

    // Unknown ids: 404 lease_not_found for every verb.
    let unknown = if keep_id == "00000000deadbeef" {
        "00000000deadbeee"
    } else {
        "00000000deadbeef"
    };
    for api in &apis {
        let r = api.get(&format!("/v1/leases/{unknown}")).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (404, "lease_not_found"),
            "{:?}",
            r.body
        );
        let r = api
            .post(&format!("/v1/leases/{unknown}/renew"), &json!({}))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (404, "lease_not_found"),
            "{:?}",
            r.body
        );
        let r = api.delete(&format!("/v1/leases/{unknown}")).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (404, "lease_not_found"),
            "{:?}",
            r.body
        );
    }
    // Malformed ids: 400 for every verb.
    for bad in [
        "xyz",
        "123",
        "deadbeef",
        "0123456789abcdef0",
        "ghijklmnopqrstuv",
        "0x23456789abcdef",
        "%20%20",
    ] {
        let r = follower.get(&format!("/v1/leases/{bad}")).await.unwrap();
        expect_400(r, &format!("GET id {bad}"));
        let r = follower
            .post(&format!("/v1/leases/{bad}/renew"), &json!({}))
            .await
            .unwrap();
        expect_400(r, &format!("renew id {bad}"));
        let r = follower.delete(&format!("/v1/leases/{bad}")).await.unwrap();
        expect_400(r, &format!("revoke id {bad}"));
    }
    // Bad renewals of a real lease.
    for body in [
        json!({"increment": 0}),
        json!({"increment": "9000h"}),
        json!({"increment": "x"}),
        json!({"extra": 1}),
    ] {
        let r = follower
            .post(&format!("/v1/leases/{keep_id}/renew"), &body)
            .await
            .unwrap();
        expect_400(r, &format!("renew {body}"));
    }
    // Bad revoke-prefix and list queries.
    for body in [json!({"prefix": ""}), json!({}), json!({"prefix": 5})] {
        expect_400(
            follower
                .post("/v1/leases/revoke-prefix", &body)
                .await
                .unwrap(),
            &format!("revoke-prefix {body}"),
        );
    }
    for q in [
        "state=bogus",
        "limit=0",
        "limit=1001",
        "cursor=zz",
        "consistency=eventual",
    ] {
        expect_400(
            follower.get(&format!("/v1/leases?{q}")).await.unwrap(),
            &format!("list ?{q}"),
        );
    }

    // Nothing changed anywhere: the one good lease, untouched.
    assert_eq!(same_everywhere(&apis, "/v1/leases").await, snapshot);
    let seen = same_everywhere(&apis, &format!("/v1/leases/{keep_id}")).await;
    assert_eq!(seen, without_clock(&keep));
    assert_eq!(seen["renewals"], 0);
}

/// Query strings the extractor cannot even parse (a negative or
/// non-numeric `limit`, an unknown parameter) are bad input like any
/// other: 400 with the JSON error body, not a plain-text rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_list_queries_get_the_json_error_body() {
    let cluster = Cluster::start(3).await;
    let api = cluster.api(1);
    let mut wrong = Vec::new();
    for path in ["/v1/leases", "/v1/accounts"] {
        for q in ["limit=-1", "limit=ten", "colour=red"] {
            let r = api.get(&format!("{path}?{q}")).await.unwrap();
            assert_eq!(r.status, 400, "{path}?{q}");
            if r.code() != "bad_request" || !r.body["error"]["message"].is_string() {
                wrong.push(format!("{path}?{q}: 400 without the JSON error body"));
            }
        }
    }
    assert_eq!(api.get_ok("/v1/leases").await["items"], json!([]));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A `ttl` above the lease's `max_ttl` is capped to it (as Vault does):
/// the contract cannot state "max_ttl >= ttl", so the request is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_above_max_ttl_is_capped_to_it() {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    for (ttl, max, secs) in [(json!(60), json!(30), 30), (json!("2h"), json!("1h"), 3600)] {
        let lease = api
            .post_expect("/v1/leases", &json!({"ttl": ttl, "max_ttl": max}), 201)
            .await;
        assert_eq!(
            (lease["ttl"].as_u64(), lease["max_ttl"].as_u64()),
            (Some(secs), Some(secs)),
            "{lease}"
        );
        assert_eq!(lease["expires_at"], lease["hard_expires_at"], "{lease}");
    }
}
