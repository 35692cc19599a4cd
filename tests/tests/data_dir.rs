//! A node refuses a data directory it cannot use or that is not its own,
//! with a clear error on stderr, a non-zero exit, and without overwriting
//! anything in it.
//!
//! - Unusable: a regular file where the data directory should be, or a
//!   data directory whose `db` is a regular file. (The tests may run as
//!   root, for whom `chmod 000` does not stop reads, so unusable paths are
//!   made of files, not permissions.)
//! - Another node's: node 2's data directory given to node 1.
//! - Another cluster's: a node started with `--cluster-id cluster-a`,
//!   stopped, and started again on the same data with
//!   `--cluster-id cluster-b`.
//!
//! "Nothing overwritten" is checked on the directory's files: every file
//! that holds data (RocksDB tables, manifest, WAL, `CURRENT`, `IDENTITY`)
//! must be byte-identical afterwards, none removed, none added. RocksDB's
//! informational files (`LOG*`, `OPTIONS-*`, `LOCK`) are listed but not
//! compared. The rightful owner must also still start on the directory
//! and hold its data (checked first, so a failure of the file check does
//! not hide it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_tests::{Cluster, Finished, run_keel};

/// How long a refused start may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A file's size and a digest of its contents.
type Fingerprint = (u64, u64);

/// Every regular file under `dir`, relative path to fingerprint.
fn manifest(dir: &Path) -> BTreeMap<PathBuf, Fingerprint> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Fingerprint>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    (bytes.len() as u64, h.finish()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// RocksDB's informational files, rewritten by any open.
fn housekeeping(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("LOG") || name.starts_with("OPTIONS-") || name == "LOCK"
}

/// What a refused start did to a data directory's files: data files
/// changed, removed or added (must be none), and housekeeping notes.
struct Diff {
    changed: Vec<String>,
    notes: Vec<String>,
}

fn diff(before: &BTreeMap<PathBuf, Fingerprint>, after: &BTreeMap<PathBuf, Fingerprint>) -> Diff {
    let mut d = Diff {
        changed: Vec::new(),
        notes: Vec::new(),
    };
    for (path, fp) in before {
        let what = match after.get(path) {
            Some(now) if now == fp => continue,
            Some(_) => "rewritten",
            None => "removed",
        };
        let entry = format!("{what} {}", path.display());
        if housekeeping(path) {
            d.notes.push(entry)
        } else {
            d.changed.push(entry)
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        let entry = format!("added {}", path.display());
        if housekeeping(path) {
            d.notes.push(entry)
        } else {
            d.changed.push(entry)
        }
    }
    d
}

impl Diff {
    fn assert_untouched(&self, what: &str) {
        println!("{what}: housekeeping files touched: {:?}", self.notes);
        assert!(
            self.changed.is_empty(),
            "{what}: the refused start modified the data directory's data files: {:?}",
            self.changed
        );
    }
}

/// A refused start: non-zero exit, and stderr says what is wrong.
fn assert_refused(what: &str, run: &Finished, needles: &[&str]) {
    assert!(
        matches!(run.code, Some(c) if c != 0),
        "{what}: expected a non-zero exit, got {:?}\nstderr:\n{}",
        run.code,
        run.stderr
    );
    let last = run
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{what}: stderr does not say `{needle}`; it ends with: {last}\nstderr:\n{}",
            run.stderr
        );
    }
    println!("{what}: exit {:?}: {last}", run.code);
}

/// The arguments of `cluster`'s node `id` with its data directory replaced.
fn args_with_data_dir(cluster: &Cluster, id: u64, dir: &Path) -> Vec<String> {
    let mut args = cluster.node(id).args.clone();
    let at = args.iter().position(|a| a == "--data-dir").unwrap() + 1;
    args[at] = dir.display().to_string();
    args
}

/// Replaces the value of `flag` in `args`.
fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == flag).unwrap() + 1;
    args[at] = value.to_string();
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_the_data_directory_should_be_is_refused() {
    let cluster = Cluster::builder(1).no_spawn().start().await;
    let path = cluster.dir().join("data-is-a-file");
    std::fs::write(&path, b"not a directory\n").unwrap();
    let run = run_keel(&args_with_data_dir(&cluster, 1, &path), EXIT_DEADLINE).await;
    assert_refused(
        "a file as the data dir",
        &run,
        &["data directory", &path.display().to_string()],
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a directory\n",
        "the file was overwritten"
    );

    // A data directory whose `db` is a file.
    let dir = cluster.dir().join("db-is-a-file");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("db"), b"not a database\n").unwrap();
    let before = manifest(&dir);
    let run = run_keel(&args_with_data_dir(&cluster, 1, &dir), EXIT_DEADLINE).await;
    assert_refused(
        "a file as the db",
        &run,
        &["data directory", &dir.display().to_string()],
    );
    assert_eq!(manifest(&dir), before, "the data directory was modified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_data_directory_is_refused() {
    let mut cluster = Cluster::start(3).await;
    let lease = cluster
        .api(1)
        .post_expect(
            "/v1/leases",
            &serde_json::json!({"ttl": "1h", "name": "owned"}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.wait_caught_up(Duration::from_secs(30)).await;
    for id in [1, 2] {
        cluster.node_mut(id).signal(libc::SIGTERM);
        let code = cluster
            .node_mut(id)
            .wait_exit(Duration::from_secs(60))
            .await;
        assert_eq!(code, Some(0), "node {id} stop");
    }
    let node2_dir = cluster.node(2).data_dir.clone();
    let before = manifest(&node2_dir);
    assert!(!before.is_empty());

    // Node 1 pointed at node 2's data.
    let run = run_keel(&args_with_data_dir(&cluster, 1, &node2_dir), EXIT_DEADLINE).await;
    assert_refused(
        "node 2's data as node 1",
        &run,
        &["belongs to node 2", "node 1"],
    );
    let files = diff(&before, &manifest(&node2_dir));

    // Both rightful owners start and hold the data.
    cluster.restart(1);
    cluster.restart(2);
    for id in 1..=3 {
        cluster.wait_ready(id, Duration::from_secs(60)).await;
    }
    for id in [1, 2] {
        let l = cluster
            .api(id)
            .get_ok(&format!("/v1/leases/{lease}?consistency=local"))
            .await;
        assert_eq!(l["name"], "owned", "node {id}");
    }
    // Checked last, so the owners' restart above is proven either way.
    files.assert_untouched("node 2's data as node 1");
    // What the nodes wrote (log, state, snapshots, the CA key among it)
    // is for their own user only.
    for id in [1, 2] {
        assert_private(&cluster.node(id).data_dir);
    }
}

/// Every directory under `dir` is 0700 and every file 0600 (nothing for
/// group or others).
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
                files += 1;
            }
        }
    }
    assert!(files > 0, "nothing in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_data_directory_is_refused() {
    let mut cluster = Cluster::builder(1)
        .arg("--cluster-id")
        .arg("cluster-a")
        .start()
        .await;
    let api = cluster.api(1);
    assert_eq!(api.get_ok("/v1/cluster").await["cluster_id"], "cluster-a");
    let lease = api
        .post_expect(
            "/v1/leases",
            &serde_json::json!({"ttl": "1h", "name": "in-a"}),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.node_mut(1).signal(libc::SIGTERM);
    assert_eq!(
        cluster.node_mut(1).wait_exit(Duration::from_secs(60)).await,
        Some(0)
    );
    let dir = cluster.node(1).data_dir.clone();
    let before = manifest(&dir);

    let args_b = with_flag(cluster.node(1).args.clone(), "--cluster-id", "cluster-b");
    let run = run_keel(&args_b, EXIT_DEADLINE).await;
    assert_refused(
        "cluster-a's data for cluster-b",
        &run,
        &["cluster-a", "cluster-b"],
    );
    let files = diff(&before, &manifest(&dir));

    // Its own cluster still starts on it, with its data.
    cluster.restart(1);
    cluster.wait_ready(1, Duration::from_secs(60)).await;
    let api = cluster.api(1);
    assert_eq!(api.get_ok("/v1/cluster").await["cluster_id"], "cluster-a");
    assert_eq!(
        api.get_ok(&format!("/v1/leases/{lease}")).await["name"],
        "in-a"
    );
    // Checked last, so the owner's restart above is proven either way.
    files.assert_untouched("cluster-a's data for cluster-b");
}
