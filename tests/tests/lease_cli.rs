//! `keel lease grant|get|list|renew|revoke|revoke-prefix` against a real
//! three-node cluster (through a follower, so writes are forwarded), as
//! tables and as `--json`; errors go to stderr with exit code 1.

use std::collections::BTreeSet;

use keel_tests::leases::{cli_field, keel_cli, without_clock};
use keel_tests::{Cluster, TOKEN};
use serde_json::{Value, json};

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|l| l["id"].as_str().expect("lease id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_cli_drives_the_cluster() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };
    let addr = cluster.node(follower).api_addr.clone();
    let api = cluster.api(leader);
    let cli = |args: &'static [&'static str]| {
        let addr = addr.clone();
        async move { keel_cli(&addr, TOKEN, args).await }
    };

    // grant, as JSON and as a table.
    let one = cli(&[
        "lease",
        "grant",
        "--ttl",
        "60",
        "--name",
        "cli/one",
        "--meta",
        "team=blue",
        "--json",
    ])
    .await
    .ok()
    .json();
    assert_eq!(
        (
            one["state"].as_str(),
            one["ttl"].as_u64(),
            one["metadata"]["team"].as_str()
        ),
        (Some("active"), Some(60), Some("blue"))
    );
    let one_id = one["id"].as_str().unwrap().to_string();
    let out = cli(&[
        "lease",
        "grant",
        "--ttl",
        "30s",
        "--max-ttl",
        "2m",
        "--name",
        "cli/two",
    ])
    .await
    .ok();
    let two_id = cli_field(&out.stdout, "id");
    assert_eq!(cli_field(&out.stdout, "name"), "cli/two");
    assert_eq!(cli_field(&out.stdout, "state"), "active");
    assert_eq!(cli_field(&out.stdout, "max_ttl"), "120");
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{two_id}")).await["name"],
        "cli/two"
    );

    // get.
    let args: Vec<String> = ["lease", "get", &one_id]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = keel_cli(&addr, TOKEN, &argv).await.ok();
    assert_eq!(cli_field(&out.stdout, "id"), one_id);
    assert_eq!(cli_field(&out.stdout, "metadata"), "{\"team\":\"blue\"}");
    let json_get = keel_cli(&addr, TOKEN, &[argv.as_slice(), &["--json"]].concat())
        .await
        .ok()
        .json();
    assert_eq!(without_clock(&json_get), without_clock(&one));

    // list: JSON, table, paging.
    let page = cli(&["lease", "list", "--prefix", "cli/", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        [one_id.clone(), two_id.clone()].into_iter().collect()
    );
    let out = cli(&["lease", "list", "--prefix", "cli/"]).await.ok();
    assert!(out.stdout.starts_with("ID"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&one_id)
            && out.stdout.contains(&two_id)
            && out.stdout.contains("cli/two"),
        "{}",
        out.stdout
    );
    let out = cli(&["lease", "list", "--prefix", "cli/", "--limit", "1"])
        .await
        .ok();
    assert!(out.stdout.contains("(more: --cursor"), "{}", out.stdout);
    let page = cli(&[
        "lease",
        "list",
        "--state",
        "active",
        "--account",
        "none-such",
        "--json",
    ])
    .await
    .ok()
    .json();
    assert_eq!(page["items"], json!([]));

    // renew.
    let renew: Vec<String> = ["lease", "renew", &one_id, "--increment", "90", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let argv: Vec<&str> = renew.iter().map(String::as_str).collect();
    let renewed = keel_cli(&addr, TOKEN, &argv).await.ok().json();
    assert_eq!(renewed["renewals"], 1);
    let out = keel_cli(&addr, TOKEN, &argv[..3]).await.ok();
    assert_eq!(cli_field(&out.stdout, "renewals"), "2");

    // revoke and revoke-prefix.
    let revoke = ["lease", "revoke", one_id.as_str()];
    let out = keel_cli(&addr, TOKEN, &revoke).await.ok();
    assert_eq!(out.stdout.trim(), format!("revoked {one_id}"));
    let r = api.get(&format!("/v1/leases/{one_id}")).await.unwrap();
    assert_eq!((r.status, r.code()), (404, "lease_not_found"));
    let again = keel_cli(&addr, TOKEN, &revoke).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("lease_not_found"), "{again:?}");
    let out = cli(&["lease", "revoke-prefix", "cli/"]).await.ok();
    assert_eq!(out.stdout.trim(), "revoked 1");
    let out = cli(&["lease", "revoke-prefix", "cli/", "--json"])
        .await
        .ok();
    assert_eq!(out.json(), json!({"revoked": 0}));
    assert_eq!(api.get_ok("/v1/leases").await["items"], json!([]));

    // Errors: a message on stderr and exit code 1.
    for (args, code) in [
        (&["lease", "get", "0000000000000001"][..], "lease_not_found"),
        (&["lease", "get", "nope"][..], "bad_request"),
        (&["lease", "grant", "--ttl", "0"][..], "bad_request"),
        (
            &["lease", "grant", "--ttl", "60", "--max-ttl", "0"][..],
            "bad_request",
        ),
    ] {
        let out = keel_cli(&addr, TOKEN, args).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(code), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let out = keel_cli(&addr, "not-the-token-0123456789", &["lease", "list"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("unauthorized"), "{out:?}");
    assert_eq!(api.get_ok("/v1/leases").await["items"], json!([]));
}
