//! Bad input to the PKI routes, in process, with DNS names allowed only
//! under `keel.internal`: CSRs that are not PEM or not a CSR, and one whose
//! signature does not verify; a wildcard, a name outside the allowed
//! domains or with a bad character, an invalid IP address, an empty common
//! name; TTLs that are zero, negative or beyond the maximum (on issue and
//! on renew); an unknown revocation reason; an unknown account (404).
//! Each gets its status with keel's JSON error body and the replicated
//! state, certificates included, stays byte for byte what it was; then the
//! untampered CSR and an allowed name are accepted, so the refusals were
//! for what they were meant to be.
//!
//! Unknown and malformed serials, an unknown field and `?format=xml` on
//! the CRL are checked for every operation in `route_matrix.rs` and not
//! repeated here.

mod support;

use serde_json::{Value, json};
use support::{Node, TOKEN, check_status};

/// A P-256 CSR for `/CN=x`, made with `openssl req -new -newkey ec
/// -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=x`.
const CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHFMG4CAQAwDDEKMAgGA1UEAwwBeDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BEcTYwkg4+jRbIGqgCfRJ/XoDHgc7k4VYJE2MO8zBBobkqzJMSALDK1hK8Roi1rQ
HT/+/5GjE8etyx1zW6+sd9KgADAKBggqhkjOPQQDAgNHADBEAiA1c1XTkHjFJHKA
t1juoy+0Owq1WkwE3OuqM85RJLv7+wIgfEXBBi4DSkvIzkaIM2FOVEW5v8CZFtch
PDd6fTjMW+g=
-----END CERTIFICATE REQUEST-----
";

/// `CSR` with one base64 digit of its last bytes changed: those bytes are
/// the end of the ECDSA signature, so the request still parses but its
/// signature does not verify.
fn tampered_csr() -> String {
    let mut lines: Vec<String> = CSR.lines().map(str::to_string).collect();
    let last = lines.len() - 2;
    let data = lines[last].trim_end_matches('=').len();
    // Two digits before the last one: six bits of data, no padding bits.
    let at = data - 3;
    let mut digits: Vec<char> = lines[last].chars().collect();
    digits[at] = if digits[at] == 'A' { 'B' } else { 'A' };
    lines[last] = digits.into_iter().collect();
    let tampered = lines.join("\n") + "\n";
    assert_ne!(tampered, CSR);
    tampered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pki_input_is_refused_and_changes_nothing() {
    let node = Node::start().await;
    let mut policy = (*node.cp.policy()).clone();
    policy.pki.allowed_domains = vec!["keel.internal".into()];
    node.cp.set_policy(policy);
    let before = node.state();

    let serial = &node.serial;
    let revoke = format!("/v1/pki/certs/{serial}/revoke");
    let renew = format!("/v1/pki/certs/{serial}/renew");
    let not_a_csr =
        "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n";
    let cases: Vec<(&str, Value, u16)> = vec![
        ("/v1/pki/sign", json!({"csr": not_a_csr, "ttl": 60}), 400),
        (
            "/v1/pki/sign",
            json!({"csr": tampered_csr(), "ttl": 3600}),
            400,
        ),
        ("/v1/pki/sign", json!({"csr": "not pem", "ttl": 3600}), 400),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["*.keel.internal"], "ttl": "1h"}),
            400,
        ),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["evil.example.com"], "ttl": "1h"}),
            400,
        ),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "dns_names": ["bad_name.keel.internal"], "ttl": "1h"}),
            400,
        ),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "ip_addresses": ["999.1.1.1"], "ttl": "1h"}),
            400,
        ),
        (
            "/v1/pki/issue",
            json!({"common_name": "", "ttl": "1h"}),
            400,
        ),
        ("/v1/pki/issue", json!({"common_name": "x", "ttl": 0}), 400),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": "100000h"}),
            400,
        ),
        ("/v1/pki/issue", json!({"common_name": "x", "ttl": -1}), 400),
        (
            "/v1/pki/issue",
            json!({"common_name": "x", "ttl": "1h", "account": "nobody"}),
            404,
        ),
        (&revoke, json!({"reason": "because"}), 400),
        (&renew, json!({"ttl": "100000h"}), 400),
    ];
    let mut wrong = Vec::new();
    for (uri, body, status) in &cases {
        let body = body.to_string();
        let answer = node.send("POST", uri, Some(TOKEN), Some(&body)).await;
        check_status(
            &mut wrong,
            &format!("POST {uri} {body:.120}"),
            &answer,
            *status,
        );
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_eq!(
        node.state(),
        before,
        "a refused request recorded or changed a certificate"
    );

    // The controls: the CSR as made, and a name under the allowed domain.
    let body = json!({"csr": CSR, "ttl": 3600}).to_string();
    let signed = node
        .send("POST", "/v1/pki/sign", Some(TOKEN), Some(&body))
        .await;
    assert_eq!(signed.status, 201, "the untampered CSR: {}", signed.text);
    let body = json!({"common_name": "ok", "dns_names": ["a.keel.internal"], "ttl": "1h"});
    let issued = node
        .send(
            "POST",
            "/v1/pki/issue",
            Some(TOKEN),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(issued.status, 201, "an allowed name: {}", issued.text);
    node.stop().await;
}
