//! The `keel` binary's command line: help, configuration errors that must
//! stop a node before it touches disk, and a dev server's first answers.
//! (Building these tests also builds the binary the cluster tests run.)

use std::process::Command;

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = keel().arg("--help").output().expect("run keel");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "server", "status", "cluster", "lease", "account", "cert", "operator", "health",
    ] {
        assert!(text.contains(sub), "help lacks {sub}: {text}");
    }
}

#[test]
fn invalid_configuration_fails_fast_without_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases: Vec<Vec<String>> = vec![
        // No peers and no join.
        vec!["--node-id".into(), "1".into()],
        // Bootstrap expecting more nodes than there are peers.
        vec![
            "--node-id".into(),
            "1".into(),
            "--peers".into(),
            "1=127.0.0.1:7401".into(),
            "--bootstrap-expect".into(),
            "2".into(),
        ],
        // Malformed peers.
        vec![
            "--node-id".into(),
            "1".into(),
            "--peers".into(),
            "1=nohost".into(),
        ],
        // Bad listen address.
        vec![
            "--node-id".into(),
            "1".into(),
            "--peers".into(),
            "1=127.0.0.1:7401".into(),
            "--api-listen".into(),
            "nowhere".into(),
        ],
        // Unreadable token file.
        vec![
            "--node-id".into(),
            "1".into(),
            "--peers".into(),
            "1=127.0.0.1:7401".into(),
            "--admin-token-file".into(),
            "/nonexistent/token".into(),
        ],
        // Bad duration.
        vec!["--dev".into(), "--shutdown-timeout".into(), "soon".into()],
    ];
    for extra in cases {
        let out = keel()
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args(&extra)
            .env_remove("KEEL_NODE_ID")
            .env("HOSTNAME", "plainhost")
            .output()
            .expect("run keel");
        assert!(!out.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid configuration"), "{extra:?}: {err}");
        assert!(!data.exists(), "{extra:?} created the data directory");
    }
}

#[test]
fn health_fails_when_nothing_listens() {
    let out = keel()
        .args(["health", "--addr", "http://127.0.0.1:1"])
        .output()
        .expect("run keel");
    assert!(!out.status.success());
}
