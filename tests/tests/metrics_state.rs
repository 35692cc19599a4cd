//! The state gauges of `/metrics` follow the state without a scrape
//! computing them: leases granted, suspended with their account and
//! restored with it show in `keel_leases` within a couple of seconds, and
//! accounts in `keel_accounts`.

use std::time::Duration;

use keel_tests::leases::metric;
use keel_tests::{Api, Cluster, eventually};
use serde_json::json;

async fn gauge_is(api: &Api, sample: &str, want: f64) {
    eventually(Duration::from_secs(10), sample, || {
        let api = api.clone();
        async move {
            let got = metric(&api, sample).await?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{sample} = {got}, want {want}"))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_gauges_follow_grants_and_account_transitions() {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    api.post_expect("/v1/accounts", &json!({"name": "acme"}), 201)
        .await;
    for i in 0..3 {
        api.post_expect(
            "/v1/leases",
            &json!({"ttl": "1h", "name": format!("g/{i}"), "account": "acme"}),
            201,
        )
        .await;
    }
    gauge_is(&api, r#"keel_leases{state="active"}"#, 3.0).await;
    gauge_is(&api, r#"keel_accounts{state="active"}"#, 1.0).await;

    api.post_expect("/v1/accounts/acme/disable", &json!({}), 200)
        .await;
    gauge_is(&api, r#"keel_leases{state="suspended"}"#, 3.0).await;
    gauge_is(&api, r#"keel_leases{state="active"}"#, 0.0).await;
    gauge_is(&api, r#"keel_accounts{state="disabled"}"#, 1.0).await;

    api.post_expect("/v1/accounts/acme/enable", &json!({}), 200)
        .await;
    gauge_is(&api, r#"keel_leases{state="active"}"#, 3.0).await;
    gauge_is(&api, r#"keel_leases{state="suspended"}"#, 0.0).await;
}
