//! Revocation reasons are accepted in their RFC 5280 spelling
//! (`keyCompromise`, `affiliationChanged`, `cessationOfOperation`) as well
//! as in snake_case, land in the CRL with the right reason code, and an
//! unknown spelling is a 400 that revokes nothing.

use keel_tests::guard::check;
use keel_tests::pki::{crl_text, openssl_serial, wait_for_ca};
use keel_tests::{Api, Cluster};
use serde_json::json;

async fn issue(api: &Api, cn: &str) -> String {
    api.post_expect(
        "/v1/pki/issue",
        &json!({"common_name": cn, "ttl": "1h"}),
        201,
    )
    .await["serial"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_5280_and_snake_case_reasons_are_both_accepted() {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, wait_for_ca(&api).await).unwrap();

    let untouched = issue(&api, "untouched").await;
    let mut wrong = Vec::new();
    for reason in [
        "KeyCompromise",
        "key-compromise",
        "keycompromise",
        "caCompromise",
        "",
    ] {
        let body = json!({"reason": reason}).to_string();
        check(
            &mut wrong,
            &api,
            "POST",
            &format!("/v1/pki/certs/{untouched}/revoke"),
            Some(&body),
            400,
            "bad_request",
        )
        .await;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let still = api.get_ok(&format!("/v1/pki/certs/{untouched}")).await;
    assert_eq!(still["state"], "active", "{still}");

    let cases = [
        ("keyCompromise", "Key Compromise"),
        ("key_compromise", "Key Compromise"),
        ("affiliationChanged", "Affiliation Changed"),
        ("cessationOfOperation", "Cessation Of Operation"),
        ("cessation_of_operation", "Cessation Of Operation"),
        ("superseded", "Superseded"),
    ];
    let mut revoked = Vec::new();
    for (i, (reason, shown)) in cases.iter().enumerate() {
        let serial = issue(&api, &format!("r{i}")).await;
        let r = api
            .post_expect(
                &format!("/v1/pki/certs/{serial}/revoke"),
                &json!({"reason": reason}),
                200,
            )
            .await;
        assert_eq!(
            r["state"],
            if *reason == "superseded" {
                "superseded"
            } else {
                "revoked"
            }
        );
        revoked.push((serial, *shown));
    }
    let text = crl_text(&api, dir.path(), &ca).await;
    for (serial, shown) in &revoked {
        let at = text
            .find(&openssl_serial(serial))
            .unwrap_or_else(|| panic!("{serial} not on the CRL: {text}"));
        let entry: String = text[at..].lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(entry.contains(shown), "{serial}: `{shown}` not in {entry}");
    }
    assert!(!text.contains(&openssl_serial(&untouched)), "{text}");
}
