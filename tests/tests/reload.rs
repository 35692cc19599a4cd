//! Reload (`POST /v1/sys/reload` and SIGHUP) of nodes configured by a TOML
//! file alone, whose admin token file is named by a path relative to it.
//!
//! A broken configuration (invalid TOML, an unknown key, a missing or
//! unreadable token file, a token too short, an empty token file, a
//! setting that needs a restart) is refused whole: 400 with the reason in
//! `error.message`, the log says why, and the old token keeps working. A
//! good change applies at once: a second token line makes both tokens
//! valid; removing the first makes it 401. SIGHUP does the same as the
//! route, on each node it reaches.

use std::path::Path;
use std::time::Duration;

use keel_tests::config_cluster::{ConfigCluster, FIRST_TOKEN};
use keel_tests::{Api, eventually};
use serde_json::json;

const SECOND_TOKEN: &str = "reload-second-token-9876543210";

/// The token works on this node for a read and a (forwarded) write.
async fn token_works(api: &Api) -> Result<(), String> {
    let r = api.get("/v1/leases").await?;
    if r.status != 200 {
        return Err(format!("GET /v1/leases: {} {}", r.status, r.body));
    }
    let r = api
        .post("/v1/leases", &json!({"ttl": 60, "name": "reload/probe"}))
        .await?;
    if r.status != 201 {
        return Err(format!("POST /v1/leases: {} {}", r.status, r.body));
    }
    Ok(())
}

async fn token_refused(api: &Api) -> Result<(), String> {
    let r = api.get("/v1/leases").await?;
    if (r.status, r.code()) == (401, "unauthorized") {
        Ok(())
    } else {
        Err(format!("GET /v1/leases: {} {}", r.status, r.body))
    }
}

/// Reloads through the API and expects a 400 whose message contains every
/// one of `reasons`; the log of node 1 must say so too.
async fn refused(cluster: &ConfigCluster, via: &Api, what: &str, reasons: &[&str]) {
    let r = via.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(
        (r.status, r.code()),
        (400, "bad_request"),
        "{what}: {:?}",
        r.body
    );
    let message = r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for reason in reasons {
        assert!(
            message.contains(reason),
            "{what}: `{reason}` not in `{message}`"
        );
    }
    // The error may span several lines (TOML errors quote the input).
    let log = cluster.node(1).log();
    let at = log
        .rfind("reload rejected")
        .unwrap_or_else(|| panic!("{what}: no `reload rejected` line in the log"));
    let line: String = log[at..].chars().take(2_000).collect();
    for reason in reasons {
        assert!(
            line.contains(reason),
            "{what}: `{reason}` not in the log entry `{line}`"
        );
    }
    assert!(
        !line.contains(FIRST_TOKEN) && !line.contains(SECOND_TOKEN),
        "a token in the log: {line}"
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_whole_and_a_good_one_applies() {
    let cluster = ConfigCluster::start(3).await;
    let old = cluster.api_with(1, FIRST_TOKEN);
    let new = cluster.api_with(1, SECOND_TOKEN);
    token_works(&old).await.unwrap();
    token_refused(&new).await.unwrap();
    let r = old
        .anonymous()
        .post("/v1/sys/reload", &json!({}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (401, "unauthorized"));

    // Nothing changed: a reload succeeds and reports no change.
    let r = old.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"reloaded": true, "changes": []})),
        "{:?}",
        r.body
    );

    let config = cluster.config_path(1);
    let good = std::fs::read_to_string(&config).unwrap();
    let tokens = cluster.token_file.clone();

    // Invalid TOML.
    write(&config, &format!("{good}this is = = not toml\n[unclosed\n"));
    refused(
        &cluster,
        &old,
        "invalid TOML",
        &[&config.display().to_string()],
    )
    .await;
    token_works(&old).await.unwrap();
    // A typo'd key.
    write(
        &config,
        &good.replace("admin_token_file", "admin_token_fil"),
    );
    refused(&cluster, &old, "unknown key", &["admin_token_fil"]).await;
    token_works(&old).await.unwrap();
    // A setting that needs a restart.
    let moved = good.replace("log_level", "shutdown_timeout = \"5s\"\nlog_level");
    let api_line = good.lines().find(|l| l.starts_with("api_listen")).unwrap();
    write(
        &config,
        &moved.replace(api_line, "api_listen = \"127.0.0.1:1\""),
    );
    refused(&cluster, &old, "listen address", &["api listen address"]).await;
    token_works(&old).await.unwrap();
    write(&config, &good);

    // The token file: missing, a directory, empty, a token too short.
    let aside = tokens.with_extension("aside");
    std::fs::rename(&tokens, &aside).unwrap();
    refused(&cluster, &old, "missing token file", &["admin-tokens"]).await;
    token_works(&old).await.unwrap();
    std::fs::create_dir(&tokens).unwrap();
    refused(
        &cluster,
        &old,
        "token file is a directory",
        &["admin-tokens"],
    )
    .await;
    token_works(&old).await.unwrap();
    std::fs::remove_dir(&tokens).unwrap();
    write(&tokens, "# nothing here\n\n");
    refused(&cluster, &old, "empty token file", &["holds no token"]).await;
    write(&tokens, &format!("{FIRST_TOKEN}\nshort\n"));
    refused(&cluster, &old, "short token", &["at least 16"]).await;
    token_works(&old).await.unwrap();
    token_refused(&new).await.unwrap();
    std::fs::rename(&aside, &tokens).unwrap();

    // A broken config on SIGHUP: refused and logged; the node keeps serving.
    write(&config, "[[[");
    let rejections = |log: String| log.matches("reload rejected").count();
    let before = rejections(cluster.node(1).log());
    cluster.node(1).signal(libc::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "SIGHUP's rejection in the log",
        || {
            let log = cluster.node(1).log();
            async move {
                if rejections(log) > before {
                    Ok(())
                } else {
                    Err("not yet".into())
                }
            }
        },
    )
    .await;
    token_works(&old).await.unwrap();
    write(&config, &good);

    // A good change: a second token line. Both work after the reload.
    write(&tokens, &format!("{FIRST_TOKEN}\n{SECOND_TOKEN}\n"));
    let r = old.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["reloaded"], true);
    assert!(
        r.body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("admin tokens")),
        "{:?}",
        r.body
    );
    token_works(&old).await.unwrap();
    token_works(&new).await.unwrap();
    // The other nodes learn it on SIGHUP.
    for id in [2, 3] {
        token_refused(&cluster.api_with(id, SECOND_TOKEN))
            .await
            .unwrap();
        cluster.node(id).signal(libc::SIGHUP);
        let api = cluster.api_with(id, SECOND_TOKEN);
        eventually(
            Duration::from_secs(10),
            &format!("node {id} accepting the second token"),
            || {
                let api = api.clone();
                async move { token_works(&api).await }
            },
        )
        .await;
        token_works(&cluster.api_with(id, FIRST_TOKEN))
            .await
            .unwrap();
        assert!(cluster.node(id).log().contains("configuration reloaded"));
    }

    // Retire the first token: refused after the reload, here and (after
    // SIGHUP) on the other nodes.
    write(&tokens, &format!("{SECOND_TOKEN}\n"));
    let r = new.post("/v1/sys/reload", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    token_refused(&old).await.unwrap();
    token_works(&new).await.unwrap();
    for id in [2, 3] {
        cluster.node(id).signal(libc::SIGHUP);
        let api = cluster.api_with(id, FIRST_TOKEN);
        eventually(
            Duration::from_secs(10),
            &format!("node {id} refusing the first token"),
            || {
                let api = api.clone();
                async move { token_refused(&api).await }
            },
        )
        .await;
        token_works(&cluster.api_with(id, SECOND_TOKEN))
            .await
            .unwrap();
    }
    for node in &cluster.nodes {
        let log = node.log();
        assert!(
            !log.contains(FIRST_TOKEN) && !log.contains(SECOND_TOKEN),
            "node {} logged a token",
            node.id
        );
        assert!(!log.contains("panicked"), "node {} panicked", node.id);
    }
}
