//! Crash-atomicity tests of the stores: the states a crash can leave
//! between (or after) storage steps, and that every one of them opens and
//! starts. A crash is modelled by writing the leftover state directly, or
//! by dropping the store and reopening it.

use std::collections::BTreeSet;
use std::path::Path;

use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper};
use rocksdb::WriteOptions;
use tempfile::TempDir;

use super::{CF_RAFT, CF_SNAPSHOT, Storage, cf, snapshot};
use crate::codec;
use crate::command::{Command, Proposal};
use crate::domain::State;
use crate::types::{Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig};

fn id(index: u64) -> LogId {
    log_id::<TypeConfig>(1, 1, index)
}

fn entry(index: u64) -> Entry {
    let payload = if index == 1 {
        EntryPayload::Membership(Membership::new_with_defaults(vec![BTreeSet::from([1])], []))
    } else {
        EntryPayload::Normal(Proposal {
            now: index,
            command: Command::InitCluster {
                cluster_id: "c".into(),
            },
            quotas: Default::default(),
            scope: None,
            idempotency: None,
        })
    };
    Entry {
        log_id: id(index),
        payload,
    }
}

async fn append(storage: &Storage, indexes: std::ops::RangeInclusive<u64>) {
    let mut log = storage.log_store();
    // Wait for the WAL flusher: it holds the database while it syncs, and
    // if the test ended first the database could be closed by that thread
    // while the test process exits (RocksDB aborts then).
    let (flushed_tx, flushed_rx) =
        <crate::types::TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
    log.append(indexes.map(entry), IOFlushed::signal(flushed_tx))
        .await
        .unwrap();
    flushed_rx.await.unwrap().unwrap();
    drop(log);
    assert_eq!(
        storage
            .wait_sole_handle(std::time::Duration::from_secs(5))
            .await,
        1,
        "the WAL flusher kept the database"
    );
}

fn put_raw(storage: &Storage, cf_name: &str, key: &[u8], value: &[u8]) {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    storage
        .db
        .put_cf_opt(cf(&storage.db, cf_name), key, value, &opts)
        .unwrap();
}

/// Closes the database (once the WAL flusher let go of it) and opens it
/// again, as a restart does.
async fn reopen(storage: Storage, dir: &Path) -> Storage {
    assert_eq!(
        storage
            .wait_sole_handle(std::time::Duration::from_secs(5))
            .await,
        1
    );
    drop(storage);
    crate::store::open_unsealed(dir)
}

#[tokio::test]
async fn purging_beyond_the_last_entry_never_inverts_the_log() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    append(&storage, 1..=5).await;
    // A snapshot install purges up to its own last log id, past the log.
    storage.log_store().purge(id(10)).await.unwrap();
    let state = storage.log_store().get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(id(10)));
    assert_eq!(state.last_log_id, Some(id(10)));

    let storage = reopen(storage, dir.path()).await;
    let mut log = storage.log_store();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(id(10)));
    assert!(log.try_get_log_entries(0..20).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_purge_mark_without_its_deletion_still_opens() {
    // What the older two-step purge left when killed between its steps.
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    append(&storage, 1..=5).await;
    put_raw(
        &storage,
        CF_RAFT,
        b"last_purged",
        &codec::encode(&id(8)).unwrap(),
    );
    let state = storage.log_store().get_log_state().await.unwrap();
    assert_eq!(
        state.last_log_id,
        Some(id(8)),
        "never below the purge point"
    );
}

#[tokio::test]
async fn a_purge_is_one_durable_step() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    append(&storage, 1..=5).await;
    storage.log_store().purge(id(3)).await.unwrap();
    let storage = reopen(storage, dir.path()).await;
    let mut log = storage.log_store();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(id(3)));
    assert_eq!(state.last_log_id, Some(id(5)));
    let left: Vec<u64> = log
        .try_get_log_entries(0..20)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(left, vec![4, 5]);
}

fn meta_at(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(id(index)),
        last_membership: StoredMembership::new(
            Some(id(1)),
            Membership::new_with_defaults(vec![BTreeSet::from([1])], []),
        ),
    }
}

#[tokio::test]
async fn a_node_killed_after_a_snapshot_install_starts_again() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    append(&storage, 1..=5).await;
    // The leader's snapshot at 10, received into this node's directory.
    let file = snapshot::write_to_temp(storage.snapshot_dir(), storage.keeper(), &State::default())
        .unwrap();
    let mut sm = storage.state_machine();
    sm.install_snapshot(&meta_at(10), file).await.unwrap();
    drop(sm);
    // Killed here: installed, but openraft had not purged the log yet.
    let storage = reopen(storage, dir.path()).await;
    let (mut log, mut sm) = (storage.log_store(), storage.state_machine());
    StorageHelper::new(&mut log, &mut sm)
        .with_id(1)
        .get_initial_state()
        .await
        .expect("starts after a crash between install and purge");
    assert_eq!(sm.applied_state().await.unwrap().0, Some(id(10)));
    // And killed again after the purge that start-up did.
    drop((log, sm));
    let storage = reopen(storage, dir.path()).await;
    let (mut log, mut sm) = (storage.log_store(), storage.state_machine());
    StorageHelper::new(&mut log, &mut sm)
        .with_id(1)
        .get_initial_state()
        .await
        .expect("starts after the purge");
    assert_eq!(sm.applied_state().await.unwrap().0, Some(id(10)));
}

#[tokio::test]
async fn leftover_snapshot_files_are_swept_and_the_current_one_kept() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    let mut sm = storage.state_machine();
    let built = sm.build_snapshot().await.unwrap();
    let current = built.snapshot.path().to_path_buf();
    drop(built);
    // An interrupted transfer and a file renamed just before a crash.
    let stray = storage.snapshot_dir().join("recv-1234.tmp");
    let orphan = storage.snapshot_dir().join("snapshot-9-00.ksnp");
    std::fs::write(&stray, b"partial").unwrap();
    std::fs::write(&orphan, b"never pointed to").unwrap();
    drop(sm);
    let storage = reopen(storage, dir.path()).await;
    assert!(!stray.exists() && !orphan.exists());
    assert!(current.exists());
    let mut sm = storage.state_machine();
    let snap = sm.get_current_snapshot().await.unwrap().expect("kept");
    snapshot::read_state(
        storage
            .keeper()
            .decrypt_from(snap.snapshot.reader().unwrap())
            .unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn a_snapshot_stored_inline_by_an_older_keel_moves_into_a_file() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    let bytes = snapshot::encode_state(&State::default()).unwrap();
    put_raw(&storage, CF_SNAPSHOT, b"chunk/\0\0\0\0", &bytes);
    put_raw(
        &storage,
        CF_SNAPSHOT,
        snapshot::KEY_META,
        &codec::encode(&meta_at(7)).unwrap(),
    );
    let storage = reopen(storage, dir.path()).await;
    let mut sm = storage.state_machine();
    let snap = sm.get_current_snapshot().await.unwrap().expect("migrated");
    assert_eq!(snap.meta, meta_at(7));
    assert_eq!(std::fs::read(snap.snapshot.path()).unwrap(), bytes);
    assert!(!storage.is_pristine().unwrap());
}

#[test]
fn snapshot_bytes_are_checked_whole() {
    let bytes = snapshot::encode_state(&State::default()).unwrap();
    assert!(snapshot::read_state(&bytes[..]).is_ok());
    assert!(snapshot::read_state(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(snapshot::read_state(&longer[..]).is_err());
    let mut newer = bytes;
    newer[5] += 1;
    let e = snapshot::read_state(&newer[..]).unwrap_err();
    assert!(e.to_string().contains("version"), "{e}");
}

#[tokio::test]
async fn the_log_end_follows_every_step_and_survives_a_reopen() {
    let dir = TempDir::new().unwrap();
    let storage = crate::store::open_unsealed(dir.path());
    let end = storage.log_end();
    assert_eq!(end.get(), 0);
    append(&storage, 1..=5).await;
    assert_eq!(end.get(), 5, "set by the append itself");
    storage
        .log_store()
        .truncate_after(Some(id(3)))
        .await
        .unwrap();
    assert_eq!(end.get(), 3, "lowered by a truncation");
    append(&storage, 4..=6).await;
    storage.log_store().purge(id(9)).await.unwrap();
    assert_eq!(end.get(), 9, "raised by a purge past the last entry");

    let storage = reopen(storage, dir.path()).await;
    assert_eq!(storage.log_end().get(), 0, "unknown until the log is read");
    storage.log_store().get_log_state().await.unwrap();
    assert_eq!(storage.log_end().get(), 9);
}
