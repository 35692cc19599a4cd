//! Slow clients cannot hold the admin API: a connection that sends part of
//! a request's headers and then nothing is closed by the server after the
//! header deadline (10 s), and other clients are served meanwhile.

use std::time::Duration;

use keel_tests::Cluster;
use keel_tests::raw::RawConn;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_headers_is_cut_and_others_are_served() {
    let cluster = Cluster::start(1).await;
    let addr = cluster.node(1).api_addr.clone();
    let api = cluster.api(1);

    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut conn = RawConn::connect(&addr).await.expect("connect");
        conn.send(b"GET /livez HTTP/1.1\r\nhost: keel-test\r\nx-slow: ")
            .await
            .expect("send part of the headers");
        stalled.push(conn);
    }
    let started = Instant::now();
    // Served while the stalled connections are open.
    let r = api.get("/livez").await.expect("livez");
    assert_eq!(r.status, 200);

    for (i, conn) in stalled.iter_mut().enumerate() {
        conn.wait_closed(started + Duration::from_secs(25))
            .await
            .unwrap_or_else(|e| panic!("stalled connection {i} still open after 25 s: {e:?}"));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "closed after {took:?}: too early for a header deadline"
    );
}
