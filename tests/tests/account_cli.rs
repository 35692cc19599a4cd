//! `keel account create|get|list|update|disable|enable|delete` against a
//! real three-node cluster, as records and as `--json`; errors go to stderr
//! with exit code 1.

use keel_tests::leases::{cli_field, format_time, keel_cli, now_ms};
use keel_tests::{Cluster, TOKEN};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_cli_drives_the_cluster() {
    let cluster = Cluster::start(3).await;
    let addr = cluster.node(2).api_addr.clone();
    let api = cluster.api(3);
    let run = |args: Vec<String>| {
        let addr = addr.clone();
        async move {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            keel_cli(&addr, TOKEN, &argv).await
        }
    };
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let at = format_time(now_ms() + 86_400_000);

    // create, as JSON and as a record.
    let created = run(v(&[
        "account",
        "create",
        "cli-one",
        "--expires-at",
        &at,
        "--max-leases",
        "5",
        "--json",
    ]))
    .await
    .ok()
    .json();
    assert_eq!(
        (created["name"].as_str(), created["state"].as_str()),
        (Some("cli-one"), Some("active"))
    );
    assert_eq!(created["limits"]["max_leases"], 5);
    assert_eq!(
        created["expires_at"]
            .as_str()
            .map(keel_tests::leases::parse_time),
        Some(keel_tests::leases::parse_time(&at))
    );
    let out = run(v(&["account", "create", "cli-two"])).await.ok();
    assert_eq!(cli_field(&out.stdout, "name"), "cli-two");
    assert_eq!(cli_field(&out.stdout, "state"), "active");
    assert_eq!(cli_field(&out.stdout, "expires_at"), "-");
    assert_eq!(api.get_ok("/v1/accounts/cli-two").await["state"], "active");

    // get and list.
    let out = run(v(&["account", "get", "cli-one"])).await.ok();
    assert_eq!(cli_field(&out.stdout, "name"), "cli-one");
    assert!(out.stdout.contains("leases 5"), "{}", out.stdout);
    let got = run(v(&["account", "get", "cli-one", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(got["limits"]["max_leases"], 5);
    let list = run(v(&["account", "list", "--json"])).await.ok().json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli-one", "cli-two"]);
    let out = run(v(&["account", "list"])).await.ok();
    assert!(
        out.stdout.starts_with("NAME")
            && out.stdout.contains("cli-one")
            && out.stdout.contains("cli-two"),
        "{}",
        out.stdout
    );

    // update: limits and expiry.
    let updated = run(v(&[
        "account",
        "update",
        "cli-two",
        "--max-leases",
        "7",
        "--json",
    ]))
    .await
    .ok()
    .json();
    assert_eq!(updated["limits"]["max_leases"], 7);
    let past = format_time(now_ms().saturating_sub(60_000));
    let out = run(v(&["account", "update", "cli-two", "--expires-at", &past]))
        .await
        .ok();
    assert_eq!(cli_field(&out.stdout, "state"), "expired");
    let out = run(v(&["account", "update", "cli-two", "--expires-at", &at]))
        .await
        .ok();
    assert_eq!(cli_field(&out.stdout, "state"), "active");

    // disable and enable.
    api.post_expect(
        "/v1/leases",
        &json!({"ttl": 600, "account": "cli-one"}),
        201,
    )
    .await;
    let out = run(v(&["account", "disable", "cli-one"])).await.ok();
    assert_eq!(cli_field(&out.stdout, "state"), "disabled");
    let leases = api.get_ok("/v1/leases?account=cli-one").await;
    assert_eq!(leases["items"][0]["state"], "suspended");
    let enabled = run(v(&["account", "enable", "cli-one", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(enabled["state"], "active");
    assert_eq!(
        api.get_ok("/v1/leases?account=cli-one").await["items"][0]["state"],
        "active"
    );

    // delete.
    let out = run(v(&["account", "delete", "cli-one"])).await.ok();
    assert_eq!(out.stdout.trim(), "deleted cli-one; revoked 1");
    let out = run(v(&["account", "delete", "cli-two", "--json"]))
        .await
        .ok();
    assert_eq!(out.json(), json!({"deleted": "cli-two", "revoked": 0}));
    assert_eq!(api.get_ok("/v1/accounts").await["items"], json!([]));
    assert_eq!(api.get_ok("/v1/leases").await["items"], json!([]));

    // Errors: message on stderr, exit code 1, nothing on stdout.
    for (args, code) in [
        (v(&["account", "get", "cli-one"]), "account_not_found"),
        (v(&["account", "create", "Bad Name"]), "bad_request"),
        (
            v(&["account", "create", "later", "--expires-at", "tomorrow"]),
            "bad_request",
        ),
        (v(&["account", "enable", "nobody"]), "account_not_found"),
    ] {
        let out = run(args.clone()).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(code), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let out = run(v(&["account", "update", "x", "--max-leases", "lots"])).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(api.get_ok("/v1/accounts").await["items"], json!([]));
}
