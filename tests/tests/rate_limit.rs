//! Per-token rate limits (`--rate-limit`, `--rate-limit-burst`) on a real
//! node: past its burst a token gets 429 `rate_limited` with a
//! `Retry-After` of whole seconds, a refused write changes nothing, health
//! routes are never limited, and the token is served again once its
//! bucket refills.

use std::time::{Duration, Instant};

use keel_tests::{Cluster, eventually};
use serde_json::json;

const RATE: u64 = 2;
const BURST: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_and_recovers() {
    let cluster = Cluster::builder(1)
        .arg("--rate-limit")
        .arg(&RATE.to_string())
        .arg("--rate-limit-burst")
        .arg(&BURST.to_string())
        .start()
        .await;
    let api = cluster.api(1);

    // Let the bucket fill up from whatever start-up used.
    tokio::time::sleep(Duration::from_millis(BURST * 1000 / RATE)).await;
    let started = Instant::now();
    let mut ok = 0u64;
    let mut limited = None;
    for _ in 0..4 * BURST {
        let r = api.get("/v1/leases").await.unwrap();
        match r.status {
            200 => ok += 1,
            429 => {
                limited.get_or_insert(r);
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    let refills = started.elapsed().as_secs_f64() * RATE as f64;
    let r = limited.expect("a token past its burst is refused");
    assert!(
        ok >= BURST - 1 && (ok as f64) <= BURST as f64 + refills + 1.0,
        "{ok} requests served with a burst of {BURST} and {refills:.1} refills"
    );
    assert_eq!(r.code(), "rate_limited", "{:?}", r.body);
    let retry: u64 = r
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    // A request frees up every 1/RATE s: the wait rounds up to 1 s.
    assert_eq!(retry, 1, "Retry-After");

    // While limited: a write is refused and changes nothing, health answers.
    let w = api
        .post("/v1/leases", &json!({"ttl": "1h", "name": "limited/x"}))
        .await
        .unwrap();
    for path in ["/livez", "/readyz"] {
        assert_eq!(
            api.anonymous().get(path).await.unwrap().status,
            200,
            "{path}"
        );
    }

    // The bucket refills: served again.
    eventually(Duration::from_secs(10), "the token is served again", || {
        let api = api.clone();
        async move {
            let r = api.get("/v1/leases?prefix=limited/").await?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {:?}", r.status, r.body))
            }
        }
    })
    .await;
    if w.status == 429 {
        eventually(
            Duration::from_secs(10),
            "the refused write left nothing",
            || {
                let api = api.clone();
                async move {
                    let r = api.get("/v1/leases?prefix=limited/").await?;
                    match (r.status, r.body["items"].as_array().map(Vec::len)) {
                        (200, Some(0)) => Ok(()),
                        (200, n) => panic!("a write refused with 429 was applied: {n:?}"),
                        (s, _) => Err(format!("{s}")),
                    }
                }
            },
        )
        .await;
    } else {
        assert_eq!(w.status, 201, "{:?}", w.body);
    }
}
