//! PKI helpers for tests: an independent X.509 implementation (the
//! `openssl` command from Debian) to check what keel issues, and waiting
//! for the cluster CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Api, eventually};

/// Runs `openssl` with `args`; returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (apt-get install openssl)");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Whether `cert` verifies against `ca` with openssl.
pub fn openssl_verify(ca: &Path, cert: &Path) -> (bool, String) {
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        &ca.display().to_string(),
        &cert.display().to_string(),
    ]);
    (ok && text.contains(": OK"), text)
}

/// Waits until the cluster CA exists and returns its PEM.
pub async fn wait_for_ca(api: &Api) -> String {
    let api = api.clone();
    eventually(Duration::from_secs(20), "the cluster CA", || {
        let api = api.clone();
        async move {
            let r = api.get("/v1/pki/ca").await?;
            match r.body["certificate"].as_str() {
                Some(pem) if r.status == 200 => Ok(pem.to_string()),
                _ => Err(format!("{} {}", r.status, r.body)),
            }
        }
    })
    .await
}

/// The CRL as openssl prints it (after checking its signature with `ca`).
pub async fn crl_text(api: &Api, dir: &Path, ca: &Path) -> String {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/pki/crl", api.base))
        .bearer_auth(crate::cluster::TOKEN)
        .send()
        .await
        .expect("GET crl");
    assert_eq!(r.status(), 200);
    let pem = r.text().await.expect("crl body");
    let path = dir.join("crl.pem");
    std::fs::write(&path, pem).expect("write crl");
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        &path.display().to_string(),
        "-CAfile",
        &ca.display().to_string(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "openssl crl failed: {text}");
    assert!(
        text.contains("verify OK"),
        "CRL signature not verified: {text}"
    );
    text
}

/// A serial as openssl prints it in a CRL (uppercase hex).
pub fn openssl_serial(serial: &str) -> String {
    serial.trim_start_matches('0').to_uppercase()
}

/// Makes a P-256 key and a CSR for `/CN=<cn>` with openssl in `dir`,
/// passing `extra` arguments to `openssl req` (`-addext ...`, `-outform
/// DER`); returns (key path, CSR path).
pub fn make_csr_with(dir: &Path, cn: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let (key_arg, csr_arg, subj) = (
        key.display().to_string(),
        csr.display().to_string(),
        format!("/CN={cn}"),
    );
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key_arg,
        "-out",
        &csr_arg,
        "-subj",
        &subj,
    ];
    args.extend_from_slice(extra);
    let (ok, text) = openssl(&args);
    assert!(ok, "openssl req: {text}");
    (key, csr)
}

/// Makes a P-256 key and a PEM CSR for `/CN=<cn>` in `dir`; returns (key
/// path, CSR PEM).
pub fn make_csr(dir: &Path, cn: &str) -> (PathBuf, String) {
    let (key, csr) = make_csr_with(dir, cn, &[]);
    (key, std::fs::read_to_string(&csr).expect("read CSR"))
}

/// Makes `dir/name.key` and `dir/name.pem` with openssl: a self-signed
/// P-256 certificate, a CA unless `ca` is false.
pub fn make_ca(dir: &Path, name: &str, ca: bool) {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=imported CA",
    ];
    let (key, cert) = (p(&format!("{name}.key")), p(&format!("{name}.pem")));
    args.extend(["-keyout", &key, "-out", &cert]);
    if !ca {
        args.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
    }
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");
}

/// Makes a P-256 key (PKCS#8) and a certificate for it signed for a day by
/// the CA `dir/ca.pem` (made by [`make_ca`]), with the subjectAltName
/// `san` (openssl syntax, e.g. `IP:127.0.0.1,URI:keel://c/node/2`):
/// `dir/<name>.key` and `dir/<name>.pem`.
pub fn issue_leaf(dir: &Path, name: &str, san: &str) {
    let (_key, csr) = make_csr_with(dir, name, &[]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, format!("subjectAltName={san}\n")).expect("write extfile");
    let p = |f: &str| dir.join(f).display().to_string();
    let (ok, text) = openssl(&[
        "x509",
        "-req",
        "-in",
        &csr.display().to_string(),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext.display().to_string(),
        "-out",
        &p(&format!("{name}.pem")),
    ]);
    assert!(ok, "{text}");
}
