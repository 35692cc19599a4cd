//! The keeper's rules: init once, shares one at a time with wrong ones
//! refused without losing progress, key files that must match, keys gone
//! after a seal, and a keyring that survives a restart and rotation.

use super::*;
use crate::store::Storage;

/// The keeper of a storage opened in `dir` (kept open by the returned
/// storage: the keeper holds the database only weakly).
fn keeper(dir: &std::path::Path) -> Kept {
    let storage = Storage::open(dir).unwrap();
    Kept(storage.keeper().clone(), storage)
}

struct Kept(Arc<Keeper>, #[allow(dead_code)] Storage);

impl std::ops::Deref for Kept {
    type Target = Arc<Keeper>;
    fn deref(&self) -> &Arc<Keeper> {
        &self.0
    }
}

#[test]
fn shares_unseal_one_at_a_time_and_a_wrong_share_keeps_the_progress() {
    let dir = tempfile::tempdir().unwrap();
    let k = keeper(dir.path());
    assert!(matches!(k.submit("00"), Err(SealError::NotInitialized)));
    let shares = k.init(5, 3).unwrap();
    assert!(matches!(k.init(5, 3), Err(SealError::AlreadyInitialized)));
    assert!(k.is_sealed());
    assert_eq!(k.submit(&shares[0]).unwrap().progress, 1);
    // A share of another cluster, a repeat and garbage change nothing.
    let foreign = {
        let other = tempfile::tempdir().unwrap();
        keeper(other.path()).init(5, 3).unwrap()
    };
    assert!(matches!(
        k.submit(&foreign[1]),
        Err(SealError::UnknownShare)
    ));
    assert!(matches!(
        k.submit(&shares[0]),
        Err(SealError::RepeatedShare)
    ));
    assert!(k.submit("not a share").is_err());
    assert_eq!(k.state().progress, 1);
    assert_eq!(k.submit(&shares[3]).unwrap().progress, 2);
    let done = k.submit(&shares[4]).unwrap();
    assert!(!done.sealed);
    assert_eq!(done.progress, 0);
    let sealed = k.seal_record(b"aad", b"acme").unwrap();
    k.drop_keys();
    assert!(k.is_sealed());
    assert!(matches!(
        k.open_record(b"aad", &sealed),
        Err(SealError::Sealed)
    ));
    assert!(matches!(
        k.seal_record(b"aad", b"x"),
        Err(SealError::Sealed)
    ));
    // Another round with other shares opens what the first keyring sealed.
    for s in [&shares[1], &shares[2], &shares[4]] {
        k.submit(s).unwrap();
    }
    assert_eq!(k.open_record(b"aad", &sealed).unwrap(), b"acme");
}

#[test]
fn the_keyring_survives_a_restart_and_rotation_keeps_old_records_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = b"0123456789abcdef0123456789abcdef";
    let (old, new) = {
        let k = keeper(dir.path());
        k.unwrap_cfg(file);
        let old = k.seal_record(b"a", b"old").unwrap();
        assert_eq!(k.rotate().unwrap(), (2, 2));
        let new = k.seal_record(b"a", b"new").unwrap();
        (old, new)
    };
    let k = keeper(dir.path());
    assert!(k.is_sealed());
    assert!(matches!(
        k.unseal_with_file(b"another key file, another root key"),
        Err(SealError::WrongKeyFile)
    ));
    k.unwrap_cfg(file);
    assert_eq!(k.open_record(b"a", &old).unwrap(), b"old");
    assert_eq!(k.open_record(b"a", &new).unwrap(), b"new");
    assert!(matches!(
        k.submit(&"ab".repeat(33)),
        Err(SealError::WrongKind(_))
    ));
}

#[test]
fn nodes_sharing_a_configuration_share_the_stream_key_but_not_the_keyring() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ka, kb) = (keeper(a.path()), keeper(b.path()));
    let shares = ka.init(3, 2).unwrap();
    kb.adopt(ka.config().unwrap()).unwrap();
    for k in [&ka, &kb] {
        k.submit(&shares[0]).unwrap();
        k.submit(&shares[2]).unwrap();
    }
    let mut w = ka.encrypt_to(Vec::new()).unwrap();
    std::io::Write::write_all(&mut w, b"snapshot of acme").unwrap();
    let bytes = w.finish().unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut kb.decrypt_from(&bytes[..]).unwrap(), &mut plain).unwrap();
    assert_eq!(plain, b"snapshot of acme");
    let record = ka.seal_record(b"x", b"y").unwrap();
    assert!(kb.open_record(b"x", &record).is_err());
    let other = tempfile::tempdir().unwrap();
    let kc = keeper(other.path());
    kc.init(1, 1).unwrap();
    assert!(kc.adopt(ka.config().unwrap()).is_err());
}

impl Keeper {
    fn unwrap_cfg(&self, file: &[u8]) {
        self.unseal_with_file(file).unwrap();
        assert!(!self.is_sealed());
        assert_eq!(self.config().unwrap().kind, SealKind::KeyFile);
    }
}
