//! Restoring a snapshot through the log: staging, verifying and switching
//! in one apply, and what the switch keeps (cluster id, latest stamp).

use super::*;
use crate::encoding::Checksum;
use crate::restore::Chunk;

fn init(id: &str) -> Command {
    Command::InitCluster {
        cluster_id: id.into(),
    }
}

/// A state of another cluster, encoded: two leases, stamped at `when`.
fn foreign_snapshot(when: Millis) -> (State, Vec<u8>) {
    let mut s = State::default();
    s.apply(&at(when, init("other"))).unwrap();
    s.apply(&at(when, grant(11, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    s.apply(&at(when, grant(12, 7_200 * SEC, 7_200 * SEC, None)))
        .unwrap();
    let bytes = encode_state(&s).unwrap();
    (s, bytes)
}

fn sha(bytes: &[u8]) -> Chunk {
    let mut sum = Checksum::default();
    sum.update(bytes);
    Chunk(sum.finish().to_vec())
}

/// The entries that restore `bytes` as restore `id`, in chunks of `size`.
fn restore_log(id: u64, bytes: &[u8], size: usize) -> Vec<Command> {
    let mut out: Vec<Command> = bytes
        .chunks(size)
        .enumerate()
        .map(|(i, c)| Command::StageRestore {
            restore_id: id,
            offset: (i * size) as u64,
            chunk: Chunk(c.to_vec()),
        })
        .collect();
    out.push(Command::CommitRestore {
        restore_id: id,
        len: bytes.len() as u64,
        sha256: sha(bytes),
    });
    out
}

fn ours() -> State {
    let mut s = State::default();
    s.apply(&at(T0, init("ours"))).unwrap();
    s.apply(&at(T0, grant(1, 10 * SEC, 60 * SEC, None)))
        .unwrap();
    s
}

#[test]
fn a_committed_restore_replaces_the_state_but_keeps_the_cluster_id_and_time() {
    let (foreign, bytes) = foreign_snapshot(T0 - 3_600 * SEC);
    let mut s = ours();
    let mut replica = ours();
    for command in restore_log(7, &bytes, 100) {
        let p = at(T0 + SEC, command);
        assert_eq!(s.apply(&p), replica.apply(&p));
    }
    assert_eq!(s, replica, "replicas applying the same log agree");
    assert_eq!(s.cluster.cluster_id.as_deref(), Some("ours"));
    assert_eq!(s.leases, foreign.leases);
    assert!(s.leases.get(1).is_none());
    assert_eq!(s.restore, None);
    // The snapshot's stamps are an hour older: time did not go back.
    assert_eq!(s.last_stamp, T0 + SEC);
    // Its lease 11 fell due while it sat on disk: due at once.
    assert_eq!(
        s.leases.due(T0 + SEC, 10),
        vec![(11, T0 - 3_600 * SEC + 10 * SEC)]
    );
}

#[test]
fn a_snapshot_stamped_later_than_the_cluster_keeps_its_later_stamp() {
    let (_, bytes) = foreign_snapshot(T0 + 3_600 * SEC);
    let mut s = ours();
    for command in restore_log(7, &bytes, 1 << 20) {
        s.apply(&at(T0 + SEC, command)).unwrap();
    }
    assert_eq!(s.last_stamp, T0 + 3_600 * SEC);
    assert_eq!(s.stamp_time(T0 + 2 * SEC), T0 + 3_600 * SEC);
}

#[test]
fn a_mismatched_or_undecodable_stage_is_refused_and_changes_nothing() {
    let (_, bytes) = foreign_snapshot(T0);
    let mut s = ours();
    for command in &restore_log(3, &bytes, 64)[..bytes.len().div_ceil(64)] {
        s.apply(&at(T0, command.clone())).unwrap();
    }
    let staged = s.clone();
    let wrong_sum = Command::CommitRestore {
        restore_id: 3,
        len: bytes.len() as u64,
        sha256: sha(b"something else"),
    };
    assert!(matches!(
        s.apply(&at(T0, wrong_sum)),
        Err(DomainError::Invalid(_))
    ));
    let wrong_len = Command::CommitRestore {
        restore_id: 3,
        len: bytes.len() as u64 - 1,
        sha256: sha(&bytes),
    };
    assert!(matches!(
        s.apply(&at(T0, wrong_len)),
        Err(DomainError::Invalid(_))
    ));
    let other_id = Command::CommitRestore {
        restore_id: 4,
        len: bytes.len() as u64,
        sha256: sha(&bytes),
    };
    assert!(matches!(
        s.apply(&at(T0, other_id)),
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(s, staged);

    let garbage = b"KSNP\x00\x01 not a state".to_vec();
    let mut g = ours();
    for command in restore_log(5, &garbage, 1 << 20) {
        let r = g.apply(&at(T0, command.clone()));
        if matches!(command, Command::CommitRestore { .. }) {
            assert!(matches!(r, Err(DomainError::Invalid(m)) if m.contains("does not decode")));
        }
    }
    assert_eq!(g.leases, ours().leases);
}

#[test]
fn chunks_must_arrive_in_order_and_a_repeated_one_is_harmless() {
    let mut s = ours();
    let chunk = |offset: u64, b: &[u8]| Command::StageRestore {
        restore_id: 9,
        offset,
        chunk: Chunk(b.to_vec()),
    };
    s.apply(&at(T0, chunk(0, b"abc"))).unwrap();
    s.apply(&at(T0, chunk(3, b"def"))).unwrap();
    let before = s.clone();
    s.apply(&at(T0, chunk(3, b"def"))).unwrap();
    assert_eq!(
        s.restore, before.restore,
        "a retried chunk is not staged twice"
    );
    assert!(matches!(
        s.apply(&at(T0, chunk(10, b"x"))),
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        s.apply(&at(T0, chunk(6, b""))),
        Err(DomainError::Invalid(_))
    ));
    // A new restore replaces the stage; the old one's chunks are refused.
    s.apply(&at(
        T0,
        Command::StageRestore {
            restore_id: 10,
            offset: 0,
            chunk: Chunk(b"new".to_vec()),
        },
    ))
    .unwrap();
    assert!(matches!(
        s.apply(&at(T0, chunk(6, b"ghi"))),
        Err(DomainError::Conflict(_))
    ));
    s.apply(&at(T0, Command::AbortRestore { restore_id: 10 }))
        .unwrap();
    assert_eq!(s.restore, None);
}

#[test]
fn a_stage_survives_a_snapshot_of_the_state_in_between() {
    let (foreign, bytes) = foreign_snapshot(T0);
    let log = restore_log(2, &bytes, 50);
    let (first, rest) = log.split_at(log.len() / 2);
    let mut s = ours();
    for c in first {
        s.apply(&at(T0, c.clone())).unwrap();
    }
    // A follower installs a Raft snapshot taken mid-restore.
    let mut follower = decode_state(&encode_state(&s).unwrap()).unwrap();
    for c in rest {
        follower.apply(&at(T0, c.clone())).unwrap();
    }
    assert_eq!(follower.leases, foreign.leases);
}
