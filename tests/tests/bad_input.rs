//! Bodies over the limit at a real listener: a head declaring more than
//! the limit (1 MiB), sent without its body, and a body streamed without a
//! length (chunked) past the limit each get 413 `payload_too_large` back
//! over the connection, and the node's state is the same before and after.
//! A process is needed for the socket: the answer must reach a client that
//! has sent only a head, or is still sending. Malformed bodies, unknown
//! fields, bad values, the limit on each body route and a body just under
//! it are checked in process in `web/tests/` (`lease_input.rs`,
//! `account_input.rs`, `cluster_input.rs`, `body_limit.rs`,
//! `route_matrix.rs`).

use std::time::Duration;

use keel_tests::TOKEN;
use keel_tests::guard::{LIMIT, guarded_node, state};
use keel_tests::raw::RawConn;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_over_a_real_connection() {
    let (cluster, api, _, _) = guarded_node().await;
    let addr = cluster.node(1).api_addr.clone();
    let before = state(&api).await;
    let auth = format!("Bearer {TOKEN}");

    // Declared too large: refused on the head alone.
    let mut conn = RawConn::connect(&addr).await.unwrap();
    let len = (LIMIT + 1).to_string();
    conn.send_head(
        "POST",
        "/v1/leases",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    )
    .await
    .unwrap();
    let r = conn
        .read_response(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "declared {len} bytes: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.code(), "payload_too_large");

    // Streamed without a length (chunked): refused once past the limit.
    let mut conn = RawConn::connect(&addr).await.unwrap();
    conn.send_head(
        "POST",
        "/v1/leases",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    // Bounded: 17 chunks of 64 KiB is just over 1 MiB; stop early if the
    // server has already answered and closed.
    for _ in 0..17 {
        if conn.send(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let r = conn
        .read_response(Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "streamed > 1 MiB: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.code(), "payload_too_large");

    let after = state(&api).await;
    assert_eq!(before, after, "oversized bodies changed the state");
}
