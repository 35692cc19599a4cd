//! `keel operator snapshot save|inspect|restore`: online backups.
//!
//! `save` streams `GET /v1/sys/snapshot` into a temporary file beside the
//! target, verifies it, fsyncs it, renames it into place and fsyncs the
//! directory: the target is either the old file or a whole, verified
//! snapshot. `inspect` reads a file's header and verifies its checksum
//! with no server. `restore` verifies the file locally first (a corrupt
//! one is never sent), then uploads it to `POST /v1/sys/snapshot/restore`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use keel_raft::backup::{self, BackupHeader, Verified};
use reqwest::Method;
use serde_json::{Value, json};

use super::output;
use super::progress::Progress;
use super::{ApiClient, ClientError};
use crate::cli::SnapshotOp;

/// How long a snapshot transfer may take in all.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Runs one snapshot operation.
pub async fn run(client: &ApiClient, op: &SnapshotOp, json: bool) -> Result<(), ClientError> {
    match op {
        SnapshotOp::Save { file } => save(client, file, json).await,
        SnapshotOp::Inspect { file } => inspect(file, json),
        SnapshotOp::Restore { file, force } => restore(client, file, *force, json).await,
    }
}

fn message(e: impl std::fmt::Display) -> ClientError {
    ClientError::Message(e.to_string())
}

fn verify(file: &Path) -> Result<Verified, ClientError> {
    backup::verify_file(file).map_err(|e| message(format!("{}: {e}", file.display())))
}

/// The header as the CLI shows it, checksum verdict included.
fn describe(file: &Path, header: &BackupHeader) -> Value {
    json!({
        "file": file.display().to_string(),
        "format_version": header.format_version,
        "cluster_id": header.cluster_id,
        "index": header.index,
        "term": header.term,
        "taken_at": keel_raft::clock::to_rfc3339(header.taken_at_ms),
        "taken_by": header.taken_by,
        "keel_version": header.keel_version,
        "leases": header.counts.leases,
        "accounts": header.counts.accounts,
        "certificates": header.counts.certificates,
        "idempotency_records": header.counts.idempotency_records,
        "state_format": header.state_format,
        "state_bytes": header.body_len,
        "encryption": match header.encryption {
            backup::BodyEncryption::None => "none",
            backup::BodyEncryption::ClusterKey => "cluster_key",
        },
        "checksum": "ok (sha-256)",
    })
}

fn print_description(v: &Value, json: bool) -> Result<(), ClientError> {
    if json {
        return output::json(v);
    }
    output::record(
        v,
        &[
            "file",
            "cluster_id",
            "index",
            "term",
            "taken_at",
            "taken_by",
            "keel_version",
            "leases",
            "accounts",
            "certificates",
            "idempotency_records",
            "format_version",
            "state_format",
            "state_bytes",
            "encryption",
            "checksum",
        ],
    );
    Ok(())
}

/// `inspect`: header and checksum, no server.
fn inspect(file: &Path, json: bool) -> Result<(), ClientError> {
    let verified = verify(file)?;
    print_description(&describe(file, &verified.header), json)
}

/// `save`: see the module docs.
async fn save(client: &ApiClient, file: &Path, json: bool) -> Result<(), ClientError> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let waiting = Progress::waiting("taking a snapshot", json);
    let request = client.streaming(Method::GET, "/v1/sys/snapshot", TRANSFER_TIMEOUT);
    let response = match client.send_streaming(request).await {
        Ok(r) => r,
        Err(e) => {
            waiting.abandon();
            return Err(e);
        }
    };
    let index = response
        .headers()
        .get("x-keel-snapshot-index")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    waiting.finish(&format!("snapshot taken at index {index}"));
    let mut progress = Progress::bytes("downloading", response.content_length(), json);
    let mut tmp = tempfile::Builder::new()
        .prefix(".keel-snapshot-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| message(format!("{}: {e}", dir.display())))?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    progress.abandon();
                    return Err(message(format!("the download broke off: {e}")));
                }
            };
            out.write_all(&chunk)?;
            progress.advance(chunk.len() as u64);
        }
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    progress.phase("verifying");
    let verified = match verify(tmp.path()) {
        Ok(v) => v,
        Err(e) => {
            progress.abandon();
            return Err(message(format!(
                "the downloaded snapshot is not whole: {e}"
            )));
        }
    };
    tmp.persist(file)
        .map_err(|e| message(format!("{}: {}", file.display(), e.error)))?;
    std::fs::File::open(&dir)?.sync_all()?;
    progress.finish(&format!("saved {}", file.display()));
    print_description(&describe(file, &verified.header), json)
}

/// `restore`: see the module docs.
async fn restore(
    client: &ApiClient,
    file: &Path,
    force: bool,
    json: bool,
) -> Result<(), ClientError> {
    let verified = verify(file)?;
    let len = std::fs::metadata(file)?.len();
    let progress = Arc::new(Mutex::new(Some(Progress::bytes(
        "uploading",
        Some(len),
        json,
    ))));
    let source = tokio::fs::File::open(file).await?;
    let counter = progress.clone();
    let mut sent = 0u64;
    let stream = tokio_util::io::ReaderStream::with_capacity(source, 1 << 20).map(move |chunk| {
        if let Ok(c) = &chunk {
            sent += c.len() as u64;
            if let Some(p) = counter.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                p.set_position(sent);
                if sent == len {
                    p.phase("the cluster is applying the snapshot");
                }
            }
        }
        chunk
    });
    let path = if force {
        "/v1/sys/snapshot/restore?force=true"
    } else {
        "/v1/sys/snapshot/restore"
    };
    let request = client
        .streaming(Method::POST, path, TRANSFER_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(stream));
    let answer = client.send_streaming(request).await;
    let progress = progress.lock().unwrap_or_else(|e| e.into_inner()).take();
    let answer = match answer {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = progress {
                p.abandon();
            }
            return Err(e);
        }
    };
    let body: Value = answer
        .json()
        .await
        .map_err(|e| message(format!("unexpected answer: {e}")))?;
    if let Some(p) = progress {
        p.finish(&format!(
            "restored the snapshot of index {}",
            verified.header.index
        ));
    }
    if json {
        return output::json(&body);
    }
    output::record(
        &body,
        &[
            "restored",
            "source_cluster_id",
            "snapshot_index",
            "taken_at",
            "bytes",
            "chunks",
            "applied_index",
        ],
    );
    output::record(
        &body["counts"],
        &["leases", "accounts", "certificates", "idempotency_records"],
    );
    Ok(())
}
