//! The request body limit (the default, 1 MiB), in process: a body
//! declared larger is refused on its head alone, without a byte of it
//! read; a body of no declared length is refused once it passes the
//! limit; a whole body over the limit is refused on every body route
//! tried. Each is 413 `payload_too_large` with keel's JSON error body and
//! leaves the replicated state byte for byte what it was; a body just
//! under the limit is accepted.
//!
//! The same refusals over a real connection (a client that sends only the
//! head, a client still streaming a chunked body when the answer comes)
//! need a socket and stay in `tests/tests/bad_input.rs`.

mod support;

use std::convert::Infallible;

use axum::body::Body;
use axum::http::header;
use bytes::Bytes;
use support::{Node, admin_request, check};

/// The default body limit.
const LIMIT: usize = 1 << 20;

/// `body`, with its length declared as a client would.
fn whole(method: &str, uri: &str, body: String) -> axum::http::Request<Body> {
    admin_request(method, uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_change_nothing() {
    let node = Node::start().await;
    let before = node.state();
    let mut wrong = Vec::new();

    // Declared too large, and not one byte of it ever arrives.
    let never = futures::stream::pending::<Result<Bytes, Infallible>>();
    let request = admin_request("POST", "/v1/leases")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, LIMIT + 1)
        .body(Body::from_stream(never))
        .expect("a request");
    let answer = node.send_request(request).await;
    let what = format!("a head declaring {} bytes", LIMIT + 1);
    check(&mut wrong, &what, &answer, 413, "payload_too_large");

    // No declared length: 17 pieces of 64 KiB, just over the limit.
    let piece = Bytes::from(vec![b' '; 64 * 1024]);
    let pieces = std::iter::repeat_n(Ok::<_, Infallible>(piece), 17);
    let request = admin_request("POST", "/v1/leases")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .expect("a request");
    let answer = node.send_request(request).await;
    let what = "17 x 64 KiB of no declared length";
    check(&mut wrong, what, &answer, 413, "payload_too_large");

    // Whole bodies over the limit, on routes of each kind.
    let big = format!(r#"{{"name":"big","pad":"{}"}}"#, "x".repeat(LIMIT));
    let acme = format!("/v1/accounts/{}", node.account);
    for (method, uri) in [
        ("POST", "/v1/leases"),
        ("POST", "/v1/accounts"),
        ("PATCH", acme.as_str()),
        ("POST", "/v1/pki/issue"),
    ] {
        let answer = node.send_request(whole(method, uri, big.clone())).await;
        let what = format!("{method} {uri} with {} bytes", big.len());
        check(&mut wrong, &what, &answer, 413, "payload_too_large");
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(node.state(), before, "oversized bodies changed the state");

    // Just under the limit is accepted (whitespace pads valid JSON).
    let mut body = r#"{"ttl":"1h","name":"just-under"}"#.to_string();
    let pad = LIMIT - body.len() - 1;
    body.insert_str(body.len() - 1, &" ".repeat(pad));
    assert_eq!(body.len(), LIMIT - 1);
    let answer = node.send_request(whole("POST", "/v1/leases", body)).await;
    assert_eq!(
        answer.status, 201,
        "a body just under the limit: {}",
        answer.text
    );
    node.stop().await;
}
