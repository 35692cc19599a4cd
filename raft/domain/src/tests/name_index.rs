//! The lease name index's lazy removal: what readers see always equals the
//! live entries, compaction bounds the dropped ones, and an id that comes
//! back under another name is live under that name only.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::*;
use crate::name_index::NameIndex;

/// The index's live view: every `(name, id)` under the empty prefix.
fn live(index: &NameIndex) -> Vec<u64> {
    index.with_prefix("").collect()
}

/// The model's ids in name order.
fn model_ids(model: &BTreeSet<(Arc<str>, u64)>) -> Vec<u64> {
    model.iter().map(|(_, id)| *id).collect()
}

#[test]
fn lazy_removals_are_invisible_and_compaction_bounds_them() {
    let n = 12_000u64;
    let mut index = NameIndex::default();
    let mut model = BTreeSet::new();
    let mut names = HashMap::new();
    for id in 1..=n {
        let name: Arc<str> = Arc::from(format!("svc/{}/{id}", id % 7));
        index.insert(name.clone(), id);
        model.insert((name.clone(), id));
        names.insert(id, name);
    }
    // Remove in a scattered order (a stride coprime with n), granting a
    // new name every 50th step, and compare with the model as we go.
    let mut compacted = 0;
    for k in 0..n {
        let id = (k * 7_919) % n + 1;
        let name = names.remove(&id).unwrap();
        let before = index.dropped();
        index.remove(id);
        model.remove(&(name, id));
        if index.dropped() < before {
            compacted += 1;
        }
        if k.is_multiple_of(50) {
            let id = n + 1 + k;
            let name: Arc<str> = Arc::from(format!("new/{id}"));
            index.insert(name.clone(), id);
            model.insert((name.clone(), id));
            names.insert(id, name);
        }
        // Never more than a quarter of what it holds is dropped, once
        // there are enough dropped entries to be worth a pass.
        let dropped = index.dropped();
        let held = index.len() + dropped;
        assert!(
            dropped < 4_096 || dropped * 4 < held,
            "{dropped} of {held} dropped"
        );
        if (k + 1).is_multiple_of(97) || k + 1 == n {
            assert_eq!(index.len(), model.len());
            assert_eq!(live(&index), model_ids(&model));
            let svc3: Vec<u64> = index.with_prefix("svc/3/").collect();
            let want: Vec<u64> = model
                .iter()
                .filter(|(name, _)| name.starts_with("svc/3/"))
                .map(|(_, id)| *id)
                .collect();
            assert_eq!(svc3, want);
        }
    }
    assert!(compacted >= 1, "the index compacted at least once");
    for (name, id) in &model {
        assert!(index.contains(name, *id));
    }
}

#[test]
fn an_id_dropped_under_one_name_comes_back_under_another_only() {
    let mut index = NameIndex::default();
    let old: Arc<str> = Arc::from("a/x");
    let new: Arc<str> = Arc::from("b/y");
    index.insert(old.clone(), 7);
    index.insert(Arc::from("a/z"), 8);
    index.remove(7);
    assert_eq!(index.with_prefix("a/").collect::<Vec<_>>(), vec![8]);
    index.insert(new.clone(), 7);
    assert_eq!(index.with_prefix("a/").collect::<Vec<_>>(), vec![8]);
    assert_eq!(index.with_prefix("b/").collect::<Vec<_>>(), vec![7]);
    assert!(!index.contains(&old, 7));
    assert!(index.contains(&new, 7));
    assert_eq!((index.len(), index.dropped()), (2, 0));
}

#[test]
fn a_regranted_id_lists_and_revokes_under_its_new_name() {
    let mut s = State::default();
    let named = |id: u64, name: &str| Command::GrantLease {
        id,
        ttl_ms: 10 * SEC,
        max_ttl_ms: 10 * SEC,
        name: Some(name.into()),
        account: None,
        metadata: Default::default(),
    };
    s.apply(&at(T0, named(7, "old/7"))).unwrap();
    s.apply(&at(T0, Command::RevokeLease { id: 7 })).unwrap();
    s.apply(&at(T0, named(7, "new/7"))).unwrap();
    s.leases.check_invariants().unwrap();
    assert!(s.leases.with_prefix("old/", None).is_empty());
    assert_eq!(s.leases.with_prefix("new/", None).len(), 1);
    assert_eq!(
        s.apply(&at(
            T0,
            Command::RevokeLeasePrefix {
                prefix: "old/".into()
            }
        )),
        Ok(Outcome::Count(0))
    );
    assert_eq!(s.leases.len(), 1);
}
