//! Lesson 3, make before break (OpenZiti #2080/#2990): `keel cert renew`
//! rotating a certificate held in local files. With an unwritable
//! directory, a full file system, or the process killed between any two of
//! its steps, the old files stay on disk and the old certificate stays
//! valid; running the command again completes the rotation. A completed
//! rotation leaves a new pair that verifies with openssl and supersedes the
//! old certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_tests::pki::{openssl_verify, wait_for_ca};
use keel_tests::{Api, Cluster, TOKEN, eventually, keel_bin};
use serde_json::json;

struct Held {
    serial: String,
    cert: PathBuf,
    key: PathBuf,
    cert_bytes: Vec<u8>,
    key_bytes: Vec<u8>,
}

/// Issues a certificate and stores it as cert.pem/key.pem in `dir`.
async fn issue_into(api: &Api, dir: &Path, cn: &str) -> Held {
    let issued = api
        .post_expect(
            "/v1/pki/issue",
            &json!({"common_name": cn, "ttl": "24h"}),
            201,
        )
        .await;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, issued["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(&key, issued["private_key"].as_str().unwrap()).unwrap();
    Held {
        serial: issued["serial"].as_str().unwrap().to_string(),
        cert_bytes: std::fs::read(&cert).unwrap(),
        key_bytes: std::fs::read(&key).unwrap(),
        cert,
        key,
    }
}

fn renew_cmd(api: &Api, held: &Held) -> Command {
    let mut cmd = Command::new(keel_bin());
    cmd.args(["cert", "renew", "--cert"])
        .arg(&held.cert)
        .arg("--key")
        .arg(&held.key)
        .env("KEEL_ADDR", &api.base)
        .env("KEEL_TOKEN", TOKEN)
        .env_remove("KEEL_ROTATE_PAUSE");
    cmd
}

async fn state(api: &Api, serial: &str) -> String {
    api.get_ok(&format!("/v1/pki/certs/{serial}")).await["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut name = p.file_name().unwrap().to_os_string();
    name.push(suffix);
    p.with_file_name(name)
}

/// Checks a completed rotation: new files verify, the old certificate is
/// superseded, no staging or backup file is left.
async fn assert_rotated(api: &Api, held: &Held, ca: &Path) {
    let (ok, text) = openssl_verify(ca, &held.cert);
    assert!(ok, "{text}");
    assert_ne!(
        std::fs::read(&held.cert).unwrap(),
        held.cert_bytes,
        "certificate file not replaced"
    );
    assert_ne!(
        std::fs::read(&held.key).unwrap(),
        held.key_bytes,
        "key file not replaced"
    );
    assert_eq!(state(api, &held.serial).await, "superseded");
    for p in [&held.cert, &held.key] {
        assert!(!sibling(p, ".keel-next").exists() && !sibling(p, ".keel-prev").exists());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&held.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Checks that nothing was broken: the old certificate is valid, and the
/// old files are on disk, in place or kept as `.keel-prev`.
async fn assert_old_in_force(api: &Api, held: &Held) {
    assert_eq!(
        state(api, &held.serial).await,
        "active",
        "old certificate no longer valid"
    );
    let in_place = std::fs::read(&held.cert).unwrap() == held.cert_bytes
        && std::fs::read(&held.key).unwrap() == held.key_bytes;
    let kept = std::fs::read(sibling(&held.cert, ".keel-prev")).ok()
        == Some(held.cert_bytes.clone())
        && std::fs::read(sibling(&held.key, ".keel-prev")).ok() == Some(held.key_bytes.clone());
    assert!(in_place || kept, "the old files are gone");
}

/// A one-node cluster, a temp dir, and the CA written into it.
async fn node_with_ca() -> (Cluster, Api, tempfile::TempDir, PathBuf) {
    let cluster = Cluster::start(1).await;
    let api = cluster.api(1);
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, wait_for_ca(&api).await).unwrap();
    (cluster, api, tmp, ca)
}

/// Runs `keel cert renew` and checks it completed the rotation.
async fn renew_completes(api: &Api, held: &Held, ca: &Path) {
    let out = renew_cmd(api, held).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_rotated(api, held, ca).await;
}

fn mount_tmpfs(dir: &Path, size: &str) {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_completes_and_supersedes_the_old_certificate() {
    let (_cluster, api, dir, ca) = node_with_ca().await;
    let held = issue_into(&api, dir.path(), "router-1").await;
    renew_completes(&api, &held, &ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_directory_and_full_file_system_leave_the_old_pair_in_force() {
    let (_cluster, api, tmp, ca) = node_with_ca().await;

    // A read-only file system.
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    mount_tmpfs(&ro, "1m");
    let _ro_guard = Unmount(ro.clone());
    let held = issue_into(&api, &ro, "ro-holder").await;
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(status.success());
    let certs_before = api.get_ok("/v1/pki/certs?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();
    let out = renew_cmd(&api, &held).output().unwrap();
    assert!(
        !out.status.success(),
        "renew succeeded on a read-only directory"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not writable"), "unclear message: {err}");
    assert_old_in_force(&api, &held).await;
    assert_eq!(std::fs::read(&held.cert).unwrap(), held.cert_bytes);
    let certs_after = api.get_ok("/v1/pki/certs?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        certs_after, certs_before,
        "a renewal was requested although preflight failed"
    );
    let status = Command::new("mount")
        .args(["-o", "remount,rw"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(status.success());
    renew_completes(&api, &held, &ca).await;

    // A full file system.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    mount_tmpfs(&full, "128k");
    let _full_guard = Unmount(full.clone());
    let held = issue_into(&api, &full, "full-holder").await;
    let filler = full.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    use std::io::Write;
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let out = renew_cmd(&api, &held).output().unwrap();
    assert!(
        !out.status.success(),
        "renew succeeded on a full file system"
    );
    assert_old_in_force(&api, &held).await;
    assert_eq!(std::fs::read(&held.cert).unwrap(), held.cert_bytes);
    assert_eq!(std::fs::read(&held.key).unwrap(), held.key_bytes);
    std::fs::remove_file(&filler).unwrap();
    renew_completes(&api, &held, &ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_any_two_steps_then_rerun_completes() {
    let (_cluster, api, tmp, ca) = node_with_ca().await;
    for step in ["preflight", "renewed", "staged", "switched"] {
        let dir = tmp.path().join(step);
        std::fs::create_dir(&dir).unwrap();
        let held = issue_into(&api, &dir, &format!("holder-{step}")).await;
        let log = dir.join("renew.log");
        let mut child = renew_cmd(&api, &held)
            .env("KEEL_ROTATE_PAUSE", step)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let marker = format!("paused after {step}");
        let log2 = log.clone();
        eventually(Duration::from_secs(20), &marker, || {
            let log = log2.clone();
            let marker = marker.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(&marker) {
                    Ok(())
                } else {
                    Err(text)
                }
            }
        })
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_old_in_force(&api, &held).await;
        let out = renew_cmd(&api, &held).output().unwrap();
        assert!(
            out.status.success(),
            "rerun after a kill at {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_rotated(&api, &held, &ca).await;
    }
}
