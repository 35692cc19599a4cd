//! Unknown member ids (404), malformed lease ids (400), bad and unknown
//! query parameters on the lists (400) and unknown methods (405) are
//! refused with the JSON error body and change nothing.

use keel_tests::guard::{check, guarded_node, state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_bad_ids_and_bad_query_parameters_are_refused() {
    let (_cluster, api, lease, _) = guarded_node().await;
    let before = state(&api).await;
    let mut wrong = Vec::new();
    let w = &mut wrong;

    // Unknown member ids: 404; malformed: 400.
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/42",
        None,
        404,
        "member_not_found",
    )
    .await;
    check(
        w,
        &api,
        "POST",
        "/v1/cluster/transfer-leader",
        Some(r#"{"to":42}"#),
        404,
        "member_not_found",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/node-two",
        None,
        400,
        "bad_request",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster/members/-1",
        None,
        400,
        "bad_request",
    )
    .await;

    // Lease ids: exactly 16 hex digits, else 400; well-formed but absent: 404.
    let absent = if lease == "00000000000000ff" {
        "00000000000000fe"
    } else {
        "00000000000000ff"
    };
    for bad in [
        "xyz",
        "0123",
        "00000000000000000",
        "zzzzzzzzzzzzzzzz",
        "0x00000000000001",
        "%20",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/leases/{bad}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "DELETE",
            &format!("/v1/leases/{bad}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "POST",
            &format!("/v1/leases/{bad}/renew"),
            Some("{}"),
            400,
            "bad_request",
        )
        .await;
    }
    check(
        w,
        &api,
        "GET",
        &format!("/v1/leases/{absent}"),
        None,
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        &format!("/v1/leases/{absent}"),
        None,
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "POST",
        &format!("/v1/leases/{absent}/renew"),
        Some("{}"),
        404,
        "lease_not_found",
    )
    .await;
    check(
        w,
        &api,
        "GET",
        "/v1/accounts/nobody",
        None,
        404,
        "account_not_found",
    )
    .await;

    // List parameters: unknown or malformed ones are refused, with the
    // JSON error body like every other 400.
    for query in [
        "bogus=1",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "consistency=sometimes",
        "state=bogus",
        "cursor=not-a-lease-id",
        "prefix=keep&bogus=1",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/leases?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
    }
    for query in [
        "bogus=1",
        "limit=0",
        "limit=abc",
        "state=bogus",
        "consistency=sometimes",
    ] {
        check(
            w,
            &api,
            "GET",
            &format!("/v1/accounts?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
        check(
            w,
            &api,
            "GET",
            &format!("/v1/pki/certs?{query}"),
            None,
            400,
            "bad_request",
        )
        .await;
    }
    check(
        w,
        &api,
        "GET",
        "/v1/pki/crl?format=xml",
        None,
        400,
        "bad_request",
    )
    .await;
    check(
        w,
        &api,
        "GET",
        &format!("/v1/leases/{lease}?consistency=sometimes"),
        None,
        400,
        "bad_request",
    )
    .await;

    // Unknown routes and methods.
    check(w, &api, "GET", "/v1/nothing-here", None, 404, "not_found").await;
    check(
        w,
        &api,
        "PUT",
        "/v1/leases",
        Some("{}"),
        405,
        "method_not_allowed",
    )
    .await;
    check(
        w,
        &api,
        "DELETE",
        "/v1/cluster",
        None,
        405,
        "method_not_allowed",
    )
    .await;

    let after = state(&api).await;
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(before, after, "refused requests changed the state");
}
