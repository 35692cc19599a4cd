//! The audit log on a real three-node cluster: a request line before and a
//! response line after every admitted request (with the log index a write
//! became), one line for every refusal (401 with the token's HMAC, 403 with
//! who was refused), events for seal, unseal, reload by signal and token
//! expiry by the tidy manager; no secret in any audit line or log line;
//! `keel audit verify` accepts the rotated files and names an edited or
//! removed line; and `--audit-required` with an unwritable audit file
//! refuses requests (503 `audit_unavailable`) and changes nothing, until the
//! file can be written again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_tests::{Api, CLUSTER_SECRET, Cluster, TOKEN, eventually, run_keel};
use serde_json::{Value, json};

/// The audit file and its rotated siblings.
fn audit_files(data_dir: &Path) -> Vec<PathBuf> {
    let dir = data_dir.join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Every audit line of a node, parsed, in chain order.
fn audit_lines(data_dir: &Path) -> Vec<Value> {
    let mut lines: Vec<Value> = audit_files(data_dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("an audit line is JSON"))
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort_by_key(|l| l["seq"].as_u64());
    lines
}

fn raw_audit(data_dir: &Path) -> String {
    audit_files(data_dir)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// The lines of one request id.
fn of_request<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["request_id"] == id).collect()
}

async fn send(api: &Api, method: &str, path: &str, body: Option<Value>, id: &str) -> (u16, Value) {
    let r = api
        .send_raw(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()),
            &[("x-request-id", id)],
        )
        .await
        .expect("an answer");
    (r.status, r.body)
}

async fn verify(files: &[PathBuf]) -> keel_tests::Finished {
    let mut args = vec!["audit".to_string(), "verify".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    run_keel(&args, Duration::from_secs(30)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refusals_and_events_are_audited_in_an_unbroken_chain_without_secrets() {
    let cluster = Cluster::builder(3)
        .arg("--audit-max-bytes")
        .arg("4096")
        .arg("--audit-keep")
        .arg("1000")
        .start()
        .await;
    let api = cluster.api(1);
    let n1 = cluster.node(1).data_dir.clone();

    // A tenant with a token, and a lease it grants, renews and revokes.
    api.post_expect(
        "/v1/accounts",
        &json!({"name": "acme", "expires_at": keel_tests::rfc3339_in(3600)}),
        201,
    )
    .await;
    let tenant = api
        .post_expect(
            "/v1/auth/tokens",
            &json!({"role": "tenant", "account": "acme", "ttl": "1h"}),
            201,
        )
        .await;
    let tenant_secret = tenant["secret"].as_str().unwrap().to_string();
    let tenant_accessor = tenant["accessor"].as_str().unwrap().to_string();
    let as_tenant = api.with_token(&tenant_secret);
    let (status, lease) = send(
        &as_tenant,
        "POST",
        "/v1/leases",
        Some(json!({"ttl": "1h", "name": "acme/worker", "account": "acme"})),
        "audit-grant",
    )
    .await;
    assert_eq!(status, 201, "{lease}");
    let lease_id = lease["id"].as_str().unwrap().to_string();
    let (status, _) = send(
        &as_tenant,
        "POST",
        &format!("/v1/leases/{lease_id}/renew"),
        None,
        "audit-renew",
    )
    .await;
    assert_eq!(status, 200);
    // Refusals: a tenant creating an account (403), an unknown token of
    // keel's shape (401), no token (401), a missing lease (404).
    let (status, _) = send(
        &as_tenant,
        "POST",
        "/v1/accounts",
        Some(json!({"name": "other", "expires_at": keel_tests::rfc3339_in(3600)})),
        "audit-forbidden",
    )
    .await;
    assert_eq!(status, 403);
    let unknown = format!("keel.{}", "ab".repeat(32));
    let (status, _) = send(
        &api.with_token(&unknown),
        "GET",
        "/v1/leases",
        None,
        "audit-unknown",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(&api.anonymous(), "GET", "/v1/cluster", None, "audit-anon").await;
    assert_eq!(status, 401);
    let (status, _) = send(
        &api,
        "DELETE",
        "/v1/leases/00000000000000000000000000000000",
        None,
        "audit-missing",
    )
    .await;
    assert!(status == 404 || status == 400, "{status}");
    // A certificate with a private key, which must reach no audit line.
    let issued = eventually(Duration::from_secs(30), "the CA issues", || {
        let api = api.clone();
        async move {
            let r = api
                .post(
                    "/v1/pki/issue",
                    &json!({"common_name": "svc.example.com", "ttl": "1h"}),
                )
                .await?;
            if r.status == 201 {
                Ok(r.body)
            } else {
                Err(format!("{}: {}", r.status, r.body))
            }
        }
    })
    .await;
    let private_key = issued["private_key"].as_str().unwrap().to_string();
    // A token that expires, removed by the leader's tidy manager.
    let short = api
        .post_expect(
            "/v1/auth/tokens",
            &json!({"role": "reader", "ttl": "1s"}),
            201,
        )
        .await;
    let short_accessor = short["accessor"].as_str().unwrap().to_string();
    // Seal and unseal node 2; reload node 1 by signal.
    cluster
        .api(2)
        .post_expect("/v1/sys/seal", &json!({}), 200)
        .await;
    cluster
        .api(2)
        .post_expect("/v1/sys/unseal", &json!({}), 200)
        .await;
    cluster.node(1).signal(libc::SIGHUP);

    // Enough lines for node 1's 4 KiB files to rotate a few times.
    for _ in 0..20 {
        api.get_ok("/v1/leases").await;
    }
    let hmac = api
        .post_expect("/v1/sys/audit/hash", &json!({"input": unknown}), 200)
        .await["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hmac.starts_with("hmac-sha256:"), "{hmac}");

    let lines = eventually(Duration::from_secs(30), "the reload is audited", || {
        let lines = audit_lines(&n1);
        async move {
            if lines
                .iter()
                .any(|l| l["event"]["kind"] == "reload" && l["event"]["source"] == "signal")
            {
                Ok(lines)
            } else {
                Err(format!("{} lines, no reload event", lines.len()))
            }
        }
    })
    .await;

    // A grant: a request line, then a response line with its log index.
    let grant = of_request(&lines, "audit-grant");
    assert_eq!(grant.len(), 2, "{grant:?}");
    assert_eq!(grant[0]["type"], "request");
    assert_eq!(grant[1]["type"], "response");
    assert!(grant[0]["seq"].as_u64() < grant[1]["seq"].as_u64());
    assert_eq!(grant[1]["auth"]["accessor"], tenant_accessor.as_str());
    assert_eq!(grant[1]["auth"]["role"], "tenant");
    assert_eq!(grant[1]["auth"]["account"], "acme");
    assert_eq!(grant[1]["request"]["method"], "POST");
    assert_eq!(grant[1]["request"]["route"], "/v1/leases");
    assert_eq!(grant[1]["response"]["status"], 201);
    assert!(
        grant[1]["response"]["log_index"]
            .as_u64()
            .is_some_and(|i| i > 0),
        "{}",
        grant[1]
    );
    // The renewal names its lease.
    let renew = of_request(&lines, "audit-renew");
    assert_eq!(renew[1]["request"]["params"]["id"], lease_id.as_str());
    assert!(
        renew[1]["response"]["log_index"].as_u64() > grant[1]["response"]["log_index"].as_u64()
    );
    // Refusals: one line each, with who and why.
    let forbidden = of_request(&lines, "audit-forbidden");
    assert_eq!(forbidden.len(), 1, "{forbidden:?}");
    assert_eq!(forbidden[0]["response"]["status"], 403);
    assert_eq!(forbidden[0]["response"]["error"], "forbidden");
    assert_eq!(forbidden[0]["auth"]["accessor"], tenant_accessor.as_str());
    let unknown_line = of_request(&lines, "audit-unknown");
    assert_eq!(unknown_line.len(), 1);
    assert_eq!(unknown_line[0]["response"]["error"], "unauthorized");
    assert_eq!(unknown_line[0]["auth"]["token_hmac"], hmac.as_str());
    let anon = of_request(&lines, "audit-anon");
    assert_eq!(anon[0]["response"]["status"], 401);
    let missing = of_request(&lines, "audit-missing");
    assert_eq!(missing.len(), 2);
    assert!(missing[1]["response"]["error"].as_str().is_some());
    assert!(missing[1]["response"]["log_index"].is_null());

    // Seal and unseal on node 2: the API's requests and the events.
    let n2 = audit_lines(&cluster.node(2).data_dir);
    for kind in ["seal", "unseal"] {
        assert!(
            n2.iter()
                .any(|l| l["event"]["kind"] == kind && l["event"]["source"] == "api"),
            "no {kind} event on node 2"
        );
        assert!(
            n2.iter()
                .any(|l| l["request"]["route"] == format!("/v1/sys/{kind}")
                    && l["response"]["status"] == 200),
            "no {kind} request on node 2"
        );
    }

    // The short token expires and the leader's tidy records its removal.
    eventually(Duration::from_secs(30), "token expiry is audited", || {
        let found = cluster.nodes.iter().any(|n| {
            audit_lines(&n.data_dir).iter().any(|l| {
                l["event"]["kind"] == "tokens_expired"
                    && l["event"]["source"] == "manager"
                    && l["event"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&short_accessor))
            })
        });
        async move {
            if found {
                Ok(())
            } else {
                Err("no tokens_expired event yet".to_string())
            }
        }
    })
    .await;

    // No secret in any audit line or node log.
    for node in &cluster.nodes {
        let raw = raw_audit(&node.data_dir);
        let log = node.log();
        for (what, secret) in [
            ("admin token", TOKEN.to_string()),
            ("cluster secret", CLUSTER_SECRET.to_string()),
            ("tenant token", tenant_secret.clone()),
            ("unknown token", unknown.clone()),
            (
                "private key",
                private_key.lines().nth(1).unwrap().to_string(),
            ),
        ] {
            assert!(!raw.contains(&secret), "{what} in node {}'s audit", node.id);
            assert!(!log.contains(&secret), "{what} in node {}'s log", node.id);
        }
    }

    // The chain holds across rotated files, on every node.
    for node in &cluster.nodes {
        let files = audit_files(&node.data_dir);
        assert!(!files.is_empty());
        let ok = verify(&files).await;
        assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
        assert!(ok.stdout.starts_with("ok: "), "{}", ok.stdout);
    }
    let files = audit_files(&n1);
    assert!(files.len() > 1, "4 KiB files rotated: {files:?}");

    // Edit a line in the middle of node 1's chain: the line after it breaks.
    let copy = tempfile::tempdir().unwrap();
    let copies: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let to = copy.path().join(f.file_name().unwrap());
            std::fs::copy(f, &to).unwrap();
            to
        })
        .collect();
    let target = copies
        .iter()
        .find(|p| std::fs::read_to_string(p).unwrap().lines().count() >= 3)
        .expect("a file with three lines")
        .clone();
    let original = std::fs::read_to_string(&target).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    lines[1] = lines[1].replacen("\"node\":\"", "\"node\":\"x", 1);
    std::fs::write(&target, lines.join("\n") + "\n").unwrap();
    let edited = verify(&copies).await;
    assert_eq!(edited.code, Some(1), "{}{}", edited.stdout, edited.stderr);
    assert!(
        edited.stderr.contains(&format!("{}:3", target.display())),
        "{}",
        edited.stderr
    );
    // Remove it instead: a gap.
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    lines.remove(1);
    std::fs::write(&target, lines.join("\n") + "\n").unwrap();
    let removed = verify(&copies).await;
    assert_eq!(removed.code, Some(1));
    assert!(removed.stderr.contains("missing"), "{}", removed.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_audit_that_cannot_be_written_refuses_requests_and_changes_nothing() {
    let mut cluster = Cluster::builder(3).no_spawn().start().await;
    // Node 3 audits to a symlink to /dev/full: every write fails.
    let link = cluster.dir().join("node-3-audit.log");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    {
        let node = cluster.node_mut(3);
        node.env
            .push(("KEEL_AUDIT_FILE".into(), link.display().to_string()));
        node.env.push(("KEEL_AUDIT_REQUIRED".into(), "true".into()));
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    for id in 1..=3 {
        cluster.wait_ready(id, Duration::from_secs(60)).await;
    }
    let api = cluster.api(1);
    let n3 = cluster.api(3);
    let before = api.get_ok("/v1/leases").await;

    for (method, path, body) in [
        (
            "POST",
            "/v1/leases",
            Some(json!({"ttl": "1h", "name": "unaudited"})),
        ),
        (
            "POST",
            "/v1/accounts",
            Some(json!({"name": "unaudited", "expires_at": keel_tests::rfc3339_in(60)})),
        ),
        ("GET", "/v1/leases", None),
    ] {
        let r = n3.send(method, path, body.as_ref()).await.unwrap();
        assert_eq!(r.status, 503, "{method} {path}: {:?}", r.body);
        assert_eq!(r.code(), "audit_unavailable");
    }
    // A refusal cannot be recorded either: still 503, not 401.
    let r = n3.anonymous().get("/v1/leases").await.unwrap();
    assert_eq!((r.status, r.code()), (503, "audit_unavailable"));
    // Nothing was written anywhere.
    assert_eq!(api.get_ok("/v1/leases").await, before);
    let accounts = api.get_ok("/v1/accounts").await;
    assert!(!accounts.to_string().contains("unaudited"), "{accounts}");
    // Health routes are not audited and still answer.
    assert_eq!(n3.anonymous().get("/livez").await.unwrap().status, 200);

    // The operator points the file somewhere writable: served again, with
    // no restart.
    let real = cluster.dir().join("node-3-audit-real.log");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let granted = n3
        .post_expect("/v1/leases", &json!({"ttl": "1h", "name": "audited"}), 201)
        .await;
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.contains(granted["id"].as_str().unwrap()) || text.contains("\"status\":201"),
        "{text}"
    );
    let ok = verify(&[real]).await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
}
