//! Leases through the API of a real three-node cluster.
//!
//! What is checked, and why:
//! - grant, lookup, list (filters `prefix`, `account`, `state`; paging with
//!   `limit`/`cursor`), renew, revoke and revoke-prefix, with writes sent to
//!   followers (forwarded to the leader) and every read asked of every node
//!   with the default linearizable consistency: all three must answer the
//!   same, since a client may be routed to any of them;
//! - a 2 s lease is gone within 3 s, and renewal never carries `expires_at`
//!   past `hard_expires_at` (a renewal near the end is clamped to it);
//! - a grant retried with the same `Idempotency-Key`, through any node,
//!   grants once.
//!
//! Bad input is in `web/tests/lease_input.rs` (in process), the CLI in
//! `lease_cli.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_tests::leases::{
    error_everywhere, list_all, node_apis, now_ms, same_everywhere, time_of, without_clock,
};
use keel_tests::{Api, Cluster, eventually};
use serde_json::{Value, json};

/// Clients of nodes 1..=3.
fn apis(cluster: &Cluster) -> Vec<Api> {
    node_apis(cluster, 3)
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|l| l["id"].as_str().expect("lease id").to_string())
        .collect()
}

async fn listed(apis: &[Api], query: &str) -> BTreeSet<String> {
    let body = same_everywhere(apis, &format!("/v1/leases?{query}")).await;
    assert!(
        body["next_cursor"].is_null(),
        "{query}: unexpected second page"
    );
    ids(body["items"].as_array().expect("items"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lifecycle_answers_the_same_on_every_node() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (f1, f2, lead) = (
        cluster.api(followers[0]),
        cluster.api(followers[1]),
        cluster.api(leader),
    );
    let apis = apis(&cluster);

    f1.post_expect("/v1/accounts", &json!({"name": "acme"}), 201)
        .await;
    f2.post_expect("/v1/accounts", &json!({"name": "beta"}), 201)
        .await;

    // Grants, mostly through followers.
    let mut web = Vec::new();
    for i in 0..3 {
        let before = now_ms();
        let body = json!({"ttl": "1h", "name": format!("app/web/{i}"), "account": "acme", "metadata": {"i": i.to_string()}});
        let l = f1.post_expect("/v1/leases", &body, 201).await;
        let after = now_ms();
        assert_eq!(l["state"], "active");
        assert_eq!(
            (l["ttl"].as_u64(), l["max_ttl"].as_u64()),
            (Some(3600), Some(86_400)),
            "{l}"
        );
        assert_eq!(l["renewals"], 0);
        assert_eq!(l["account"], "acme");
        assert_eq!(l["metadata"]["i"], i.to_string());
        let issued = time_of(&l, "issued_at");
        assert!(
            (before..=after).contains(&issued),
            "issued_at {issued} outside [{before}, {after}]"
        );
        assert_eq!(time_of(&l, "expires_at"), issued + 3_600_000);
        assert_eq!(time_of(&l, "hard_expires_at"), issued + 86_400_000);
        assert_eq!(l["id"].as_str().map(str::len), Some(16));
        web.push(l);
    }
    let mut db = Vec::new();
    for i in 0..2 {
        let body =
            json!({"ttl": 600, "max_ttl": "2h", "name": format!("app/db/{i}"), "account": "beta"});
        let l = f2.post_expect("/v1/leases", &body, 201).await;
        assert_eq!(
            (l["ttl"].as_u64(), l["max_ttl"].as_u64()),
            (Some(600), Some(7200))
        );
        db.push(l);
    }
    let other = lead
        .post_expect("/v1/leases", &json!({"ttl": "30m", "name": "other/x"}), 201)
        .await;
    assert!(other["account"].is_null());
    let all: Vec<Value> = web.iter().chain(&db).chain([&other]).cloned().collect();
    assert_eq!(ids(&all).len(), 6, "ids are unique");

    // Lookup: every node returns what the grant returned.
    for l in &all {
        let seen =
            same_everywhere(&apis, &format!("/v1/leases/{}", l["id"].as_str().unwrap())).await;
        assert_eq!(seen, without_clock(l));
    }

    // Lists and their filters.
    let everything = same_everywhere(&apis, "/v1/leases").await;
    let items = everything["items"].as_array().unwrap();
    assert_eq!(ids(items), ids(&all));
    let order: Vec<&str> = items.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "list is in id order: {order:?}"
    );
    assert_eq!(listed(&apis, "prefix=app/web/").await, ids(&web));
    assert_eq!(
        listed(&apis, "prefix=app/").await,
        ids(&web).union(&ids(&db)).cloned().collect()
    );
    assert_eq!(listed(&apis, "prefix=nothing/").await, BTreeSet::new());
    assert_eq!(listed(&apis, "account=beta").await, ids(&db));
    assert_eq!(listed(&apis, "account=nobody").await, BTreeSet::new());
    assert_eq!(
        listed(&apis, "account=acme&prefix=app/db/").await,
        BTreeSet::new()
    );
    assert_eq!(listed(&apis, "state=active").await, ids(&all));
    assert_eq!(listed(&apis, "state=suspended").await, BTreeSet::new());
    f1.post_expect("/v1/accounts/beta/disable", &json!({}), 200)
        .await;
    assert_eq!(listed(&apis, "state=suspended").await, ids(&db));
    assert_eq!(
        listed(&apis, "state=active").await,
        ids(&web)
            .union(&ids(std::slice::from_ref(&other)))
            .cloned()
            .collect()
    );
    assert_eq!(
        listed(&apis, "state=suspended&account=beta&prefix=app/db/1").await,
        ids(&db[1..])
    );
    f2.post_expect("/v1/accounts/beta/enable", &json!({}), 200)
        .await;
    assert_eq!(listed(&apis, "state=suspended").await, BTreeSet::new());

    // Paging: pages of two, each page the same on every node, together
    // every lease exactly once, in order.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/leases?limit=2".to_string(),
            Some(c) => format!("/v1/leases?limit=2&cursor={c}"),
        };
        let page = same_everywhere(&apis, &path).await;
        pages.push(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string())
                .collect(),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(
        pages.len() >= 3 && pages.iter().all(|p| p.len() <= 2),
        "{pages:?}"
    );
    let flat: Vec<String> = pages.concat();
    assert_eq!(
        flat,
        order.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "pages cover the list once, in order"
    );
    assert_eq!(
        ids(&list_all(&f2, "/v1/leases?limit=1&prefix=app/")
            .await
            .unwrap()),
        listed(&apis, "prefix=app/").await
    );

    // Renew through a follower: an explicit increment, then the default.
    let target = web[0]["id"].as_str().unwrap().to_string();
    let before = now_ms();
    let renewed = f2
        .post_expect(
            &format!("/v1/leases/{target}/renew"),
            &json!({"increment": "2h"}),
            200,
        )
        .await;
    let after = now_ms();
    assert_eq!(renewed["renewals"], 1);
    let expires = time_of(&renewed, "expires_at");
    assert!(
        (before + 7_200_000..=after + 7_200_000).contains(&expires),
        "{renewed}"
    );
    assert!(expires <= time_of(&renewed, "hard_expires_at"));
    assert_eq!(
        same_everywhere(&apis, &format!("/v1/leases/{target}")).await,
        without_clock(&renewed)
    );
    // The default increment is the ttl (1h): shorter than what is left,
    // so the deadline stays (a renewal never shortens a lease).
    let two_hours = expires;
    let renewed = lead
        .post_expect(&format!("/v1/leases/{target}/renew"), &json!({}), 200)
        .await;
    assert_eq!(renewed["renewals"], 2);
    assert_eq!(
        time_of(&renewed, "expires_at"),
        two_hours,
        "a renewal shortened the lease: {renewed}"
    );
    // An empty body is the same as `{}`.
    let r = f1
        .send_raw("POST", &format!("/v1/leases/{target}/renew"), None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.body["renewals"]),
        (200, &json!(3)),
        "{:?}",
        r.body
    );

    // Revoke through a follower: gone everywhere; a second revoke is 404.
    let gone = db[0]["id"].as_str().unwrap().to_string();
    let r = f1.delete(&format!("/v1/leases/{gone}")).await.unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    error_everywhere(&apis, &format!("/v1/leases/{gone}"), 404, "lease_not_found").await;
    let r = f2.delete(&format!("/v1/leases/{gone}")).await.unwrap();
    assert_eq!((r.status, r.code()), (404, "lease_not_found"));
    let beta = same_everywhere(&apis, "/v1/accounts/beta").await;
    assert_eq!(beta["usage"]["leases"], 1);

    // Revoke by prefix through a follower.
    let r = f2
        .post_expect(
            "/v1/leases/revoke-prefix",
            &json!({"prefix": "app/web/"}),
            200,
        )
        .await;
    assert_eq!(r, json!({"revoked": 3}));
    for l in &web {
        error_everywhere(
            &apis,
            &format!("/v1/leases/{}", l["id"].as_str().unwrap()),
            404,
            "lease_not_found",
        )
        .await;
    }
    assert_eq!(listed(&apis, "prefix=app/").await, ids(&db[1..]));
    let acme = same_everywhere(&apis, "/v1/accounts/acme").await;
    assert_eq!(acme["usage"]["leases"], 0);
    let r = f1
        .post_expect(
            "/v1/leases/revoke-prefix",
            &json!({"prefix": "app/web/"}),
            200,
        )
        .await;
    assert_eq!(r, json!({"revoked": 0}));
    assert_eq!(
        listed(&apis, "").await,
        ids(&[db[1].clone(), other.clone()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_leases_expire_and_renewal_never_passes_max_ttl() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.api(if leader == 1 { 2 } else { 1 });
    let apis = apis(&cluster);

    // A 2 s lease is readable (and active) at once, and gone within 3 s.
    let short = follower
        .post_expect("/v1/leases", &json!({"ttl": 2, "name": "short"}), 201)
        .await;
    let id = short["id"].as_str().unwrap().to_string();
    let issued = time_of(&short, "issued_at");
    assert_eq!(time_of(&short, "expires_at"), issued + 2_000);
    for api in &apis {
        let r = api.get(&format!("/v1/leases/{id}")).await.unwrap();
        if now_ms() < issued + 2_000 {
            assert_eq!(
                (r.status, &r.body["state"]),
                (200, &json!("active")),
                "{:?}",
                r.body
            );
        }
    }
    let within = Duration::from_millis((issued + 3_000).saturating_sub(now_ms()));
    eventually(within, "the 2 s lease gone within 3 s of its grant", || {
        let api = follower.clone();
        let path = format!("/v1/leases/{id}");
        async move {
            let r = api.get(&path).await?;
            if (r.status, r.code()) == (404, "lease_not_found") {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        }
    })
    .await;
    error_everywhere(&apis, &format!("/v1/leases/{id}"), 404, "lease_not_found").await;

    // Renewals are clamped to hard_expires_at = issued_at + max_ttl.
    let l = follower
        .post_expect(
            "/v1/leases",
            &json!({"ttl": "3s", "max_ttl": "4s", "name": "clamped"}),
            201,
        )
        .await;
    let id = l["id"].as_str().unwrap().to_string();
    let issued = time_of(&l, "issued_at");
    let hard = time_of(&l, "hard_expires_at");
    assert_eq!(hard, issued + 4_000);
    let renew = |body: Value| {
        let api = follower.clone();
        let path = format!("/v1/leases/{id}/renew");
        async move { api.post_expect(&path, &body, 200).await }
    };
    let mut answers = Vec::new();
    // A short increment may shorten the deadline, never lengthen past hard.
    let r = renew(json!({"increment": "1s"})).await;
    assert!(time_of(&r, "expires_at") < hard, "{r}");
    answers.push(r);
    // A huge increment is clamped.
    let r = renew(json!({"increment": "1h"})).await;
    assert_eq!(
        time_of(&r, "expires_at"),
        hard,
        "an increment past max_ttl is clamped: {r}"
    );
    answers.push(r);
    // Near the end, the default increment (the 3 s ttl) is clamped too.
    let near_end = issued + 1_200;
    eventually(
        Duration::from_secs(5),
        "1.2 s after the grant",
        || async move {
            if now_ms() >= near_end {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    )
    .await;
    let r = renew(json!({})).await;
    assert_eq!(
        time_of(&r, "expires_at"),
        hard,
        "a renewal near the end is clamped: {r}"
    );
    answers.push(r);
    for (n, a) in answers.iter().enumerate() {
        assert_eq!(a["renewals"], n as u64 + 1);
        assert_eq!(time_of(a, "hard_expires_at"), hard);
        assert!(time_of(a, "expires_at") <= hard, "{a}");
    }
    // Every node agrees, and nothing extends the lease past hard.
    let seen = same_everywhere(&apis, &format!("/v1/leases/{id}")).await;
    assert_eq!(time_of(&seen, "expires_at"), hard);
    eventually(
        Duration::from_secs(10),
        "the clamped lease gone after hard_expires_at",
        || {
            let api = follower.clone();
            let path = format!("/v1/leases/{id}");
            async move {
                let r = api.post(&format!("{path}/renew"), &json!({})).await?;
                match (r.status, r.code()) {
                    (200, _) if time_of(&r.body, "expires_at") <= hard => {
                        Err("still renewable, clamped".into())
                    }
                    (200, _) => panic!("a renewal passed hard_expires_at: {}", r.body),
                    (404, "lease_not_found") => {
                        assert!(now_ms() >= hard, "gone before its hard deadline");
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    error_everywhere(&apis, &format!("/v1/leases/{id}"), 404, "lease_not_found").await;
}

/// A grant retried with the same `Idempotency-Key` returns the first lease
/// (through any node) instead of granting twice; the same key with another
/// body is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_grant_with_the_same_idempotency_key_grants_once() {
    let cluster = Cluster::start(3).await;
    let apis = apis(&cluster);
    let body = json!({"ttl": "10m", "name": "once"});
    let raw = body.to_string().into_bytes();
    let key = [("idempotency-key", "grant-once-1")];
    let mut answers = Vec::new();
    for api in &apis {
        let r = api
            .send_raw("POST", "/v1/leases", Some(raw.clone()), &key)
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
        answers.push(without_clock(&r.body));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let listed = same_everywhere(&apis, "/v1/leases?prefix=once").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let other = json!({"ttl": "20m", "name": "once"})
        .to_string()
        .into_bytes();
    let r = apis[1]
        .send_raw("POST", "/v1/leases", Some(other), &key)
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (409, "conflict"), "{:?}", r.body);
    // A different key grants another lease.
    let r = apis[2]
        .send_raw(
            "POST",
            "/v1/leases",
            Some(raw),
            &[("idempotency-key", "grant-once-2")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let listed = same_everywhere(&apis, "/v1/leases?prefix=once").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
}
