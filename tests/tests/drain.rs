//! Lesson 2, "drain, then force": stopping a node must not cut requests
//! that are already being served, must not accept new ones, and must not
//! wait forever for a request that never ends.
//!
//! A single node runs with `--shutdown-timeout 3s`. Two requests are truly
//! in flight when SIGTERM arrives: each sends its head with
//! `Expect: 100-continue`, and the server's `100 Continue` proves the
//! handler is running and reading the body, which then trickles in over
//! the socket (one finishes about 1.5 s after it started, the other would
//! take 10 s). After SIGTERM:
//! - a new request is refused (connection refused or closed) or answered
//!   503 `shutting_down`; never served;
//! - the short request completes with 201 and its lease is durable;
//! - the long one is cut around the drain deadline, without a 2xx;
//! - the process exits 0 within the timeout plus slack.
//!
//! Timings are measured and printed; only loose bounds are asserted, since
//! other clusters may share the machine.

use std::time::Duration;

use keel_tests::raw::{RawConn, RawError, RawReply};
use keel_tests::{Api, Cluster, TOKEN, eventually};
use tokio::time::Instant;

/// The configured drain deadline.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// A lease grant whose body is in flight: the head is sent and the server
/// is reading the body.
struct Trickle {
    conn: RawConn,
    rest: Vec<u8>,
}

/// Opens a grant of a lease named `name` whose body will take a while to
/// send, and waits until the server's handler reads the body.
async fn open_trickle(addr: &str, name: &str) -> Trickle {
    // Whitespace is valid JSON: it pads the body so it can trickle.
    let body = format!("{{\"ttl\":\"1h\",\"name\":\"{name}\"{}}}", " ".repeat(200));
    let auth = format!("Bearer {TOKEN}");
    let len = body.len().to_string();
    let mut conn = RawConn::connect(addr).await.expect("connect");
    conn.send_head(
        "POST",
        "/v1/leases",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-length", &len),
            ("expect", "100-continue"),
        ],
    )
    .await
    .expect("send head");
    // `100 Continue` is written when the handler first polls the body: from
    // here on the request is in flight on the server.
    let (status, _) = conn
        .read_head(Instant::now() + Duration::from_secs(10))
        .await
        .expect("100 Continue");
    assert_eq!(status, 100, "expected 100 Continue for {name}");
    let mut bytes = body.into_bytes();
    let first = bytes.drain(..10).collect::<Vec<u8>>();
    conn.send(&first).await.expect("first body bytes");
    Trickle { conn, rest: bytes }
}

/// What happened to a trickling request, and when (from the start).
#[derive(Debug)]
struct Outcome {
    result: Result<RawReply, RawError>,
    /// Body bytes actually sent before the end.
    sent_all: bool,
    after: Duration,
}

/// Sends the rest of the body in `pieces` over `over`, then reads the
/// answer (or sees the connection cut).
fn finish_trickle(
    mut t: Trickle,
    pieces: usize,
    over: Duration,
    started: Instant,
) -> tokio::task::JoinHandle<Outcome> {
    tokio::spawn(async move {
        let step = over / pieces as u32;
        let chunk = t.rest.len().div_ceil(pieces);
        let mut sent_all = true;
        for piece in t.rest.chunks(chunk) {
            tokio::time::sleep(step).await;
            if t.conn.send(piece).await.is_err() {
                sent_all = false;
                break;
            }
        }
        let result = t
            .conn
            .read_response(Instant::now() + Duration::from_secs(30))
            .await;
        Outcome {
            result,
            sent_all,
            after: started.elapsed(),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_cuts_at_the_deadline() {
    let mut cluster = Cluster::builder(1)
        .arg("--shutdown-timeout")
        .arg(&format!("{}s", SHUTDOWN_TIMEOUT.as_secs()))
        .start()
        .await;
    let addr = cluster.node(1).api_addr.clone();

    let short = open_trickle(&addr, "drain-short").await;
    let long = open_trickle(&addr, "drain-long").await;
    let started = Instant::now();
    let short = finish_trickle(short, 15, Duration::from_millis(1500), started);
    let long = finish_trickle(long, 50, Duration::from_secs(10), started);

    cluster.node_mut(1).signal(libc::SIGTERM);
    let signalled = Instant::now();

    // New work is refused: once the node stops being ready, a new
    // connection is refused, closed, or answered 503 shutting_down.
    let fresh = Api::new(&addr, Some(TOKEN));
    eventually(
        Duration::from_secs(10),
        "the node leaving readiness",
        || {
            let api = Api::new(&addr, None);
            async move {
                match api.get("/readyz").await {
                    Err(_) => Ok(()),
                    Ok(r) if r.status == 503 => Ok(()),
                    Ok(r) => Err(format!("/readyz {}", r.status)),
                }
            }
        },
    )
    .await;
    let refused = fresh
        .post(
            "/v1/leases",
            &serde_json::json!({"ttl": "1h", "name": "drain-new"}),
        )
        .await;
    match &refused {
        Err(_) => {}
        Ok(r) => {
            assert_eq!(
                r.status, 503,
                "a new request during drain: {} {}",
                r.status, r.text
            );
            assert_eq!(r.code(), "shutting_down", "{}", r.text);
            assert!(r.retry_after.is_some(), "503 without Retry-After");
        }
    }

    // The short request completes, with 201.
    let short = short.await.unwrap();
    let short_reply = short.result.as_ref().unwrap_or_else(|e| {
        panic!(
            "the in-flight short request was cut after {:?}: {e:?}\n{}",
            short.after,
            cluster.logs()
        )
    });
    assert!(short.sent_all);
    assert_eq!(
        short_reply.status,
        201,
        "short request: {}",
        String::from_utf8_lossy(&short_reply.body)
    );
    let short_id = short_reply.json()["id"]
        .as_str()
        .expect("lease id")
        .to_string();

    // The long one is cut around the deadline: no answer, or at least no
    // 2xx, and not before the drain deadline.
    let long = long.await.unwrap();
    let cut_after_signal = long.after.saturating_sub(signalled - started);
    match &long.result {
        Ok(r) => assert!(
            !(200..300).contains(&r.status),
            "the long request was served {} after the drain deadline",
            r.status
        ),
        Err(RawError::Closed) | Err(RawError::Io(_)) => {}
        Err(e) => panic!("the long request was neither answered nor cut: {e:?}"),
    }
    assert!(
        !long.sent_all || long.result.is_err(),
        "the long request's body went through: it was not cut"
    );
    assert!(
        cut_after_signal >= SHUTDOWN_TIMEOUT - Duration::from_millis(500),
        "the long request was cut {cut_after_signal:?} after SIGTERM, before the {SHUTDOWN_TIMEOUT:?} deadline"
    );

    // Exit 0, within the deadline plus slack.
    let code = cluster
        .node_mut(1)
        .wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(20))
        .await;
    let exited_after = signalled.elapsed();
    println!(
        "drain: new request -> {}; short request 201 after {:?}; long request cut {:?} after SIGTERM ({:?}); exit {code:?} {:?} after SIGTERM",
        match &refused {
            Err(e) => format!("no answer ({e})"),
            Ok(r) => format!("{} {}", r.status, r.code()),
        },
        short.after,
        cut_after_signal,
        long.result.as_ref().map(|r| r.status),
        exited_after
    );
    assert_eq!(code, Some(0), "exit code\n{}", cluster.node(1).log_tail(30));
    let log = cluster.node(1).log();
    assert!(
        log.contains("drain deadline reached; cutting connections"),
        "the log should say the drain deadline cut a connection:\n{}",
        cluster.node(1).log_tail(30)
    );

    // The acknowledged short write survived the stop; nothing else was
    // written.
    cluster.restart(1);
    cluster.wait_ready(1, Duration::from_secs(60)).await;
    let api = cluster.api(1);
    let lease = api.get_ok(&format!("/v1/leases/{short_id}")).await;
    assert_eq!(lease["name"], "drain-short");
    let all = keel_tests::workload::lease_names(&api, "linearizable")
        .await
        .unwrap();
    let names: Vec<&String> = all.values().collect();
    assert_eq!(
        names,
        ["drain-short"],
        "only the drained request may have written"
    );
}
