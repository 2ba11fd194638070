//! Tests of the record store semantics (P17: a stored result is never overwritten).

use lucid_core::{Digest, EntityId, Epoch, Slot, SlotRange, UnixMillis};
use pollster::block_on;
use proptest::prelude::*;

use super::*;
use crate::leader::{NoLeaderReason, Outcome};
use crate::testing;

fn tally(epoch: u64, revision: u32, digest: u8) -> Tally {
    Tally {
        epoch: Epoch(epoch),
        window: SlotRange { start: Slot(0), end: Slot(720 * epoch) },
        revision,
        entries: Vec::new(),
        digest: Digest::from_bytes([digest; 32]),
    }
}

#[test]
fn tally_revisions_and_settlement() {
    let store = MemoryRecordStore::new();
    let at = UnixMillis(1);
    assert_eq!(block_on(store.put_tally(&tally(3, 0, 1), at)).unwrap(), TallyPut::Stored);
    assert_eq!(block_on(store.put_tally(&tally(3, 0, 1), at)).unwrap(), TallyPut::AlreadyPresent);
    assert!(matches!(
        block_on(store.put_tally(&tally(3, 0, 2), at)),
        Err(Error::TallyConflict { .. })
    ));
    assert_eq!(block_on(store.put_tally(&tally(3, 2, 3), at)).unwrap(), TallyPut::Stored);
    assert_eq!(block_on(store.put_tally(&tally(3, 1, 4), at)).unwrap(), TallyPut::Outdated);
    assert!(block_on(store.settle_tally(Epoch(3), UnixMillis(9))).unwrap());
    assert!(!block_on(store.settle_tally(Epoch(3), UnixMillis(10))).unwrap());
    assert!(!block_on(store.settle_tally(Epoch(4), UnixMillis(10))).unwrap());
    assert_eq!(block_on(store.put_tally(&tally(3, 5, 5), at)).unwrap(), TallyPut::Settled);
    let stored = block_on(store.tally(Epoch(3))).unwrap().unwrap();
    assert_eq!((stored.tally.revision, stored.settled_at), (2, Some(UnixMillis(9))));
}

fn schedule(slot: u64, reason: NoLeaderReason) -> Schedule {
    Schedule {
        slot: Slot(slot),
        epoch: Epoch(slot / 720),
        tally_digest: None,
        outcome: Outcome::NoLeader(reason),
    }
}

#[test]
fn schedules_are_insert_if_absent() {
    let store = MemoryRecordStore::new();
    let a = schedule(5, NoLeaderReason::TallyPending);
    assert_eq!(block_on(store.insert_schedule(&a)).unwrap(), Recorded::Inserted);
    assert_eq!(block_on(store.insert_schedule(&a)).unwrap(), Recorded::AlreadyPresent);
    let b = schedule(5, NoLeaderReason::NoRankedEntity);
    assert!(matches!(block_on(store.insert_schedule(&b)), Err(Error::ScheduleConflict { .. })));
    assert_eq!(block_on(store.schedule(Slot(5))).unwrap(), Some(a));
}

fn result(choice: u8) -> SlotResult {
    match choice % 3 {
        0 => SlotResult::Missed,
        1 => SlotResult::Success { winner: EntityId::Node(testing::node(u64::from(choice))) },
        _ => SlotResult::NoLeader(NoLeaderReason::AllInCooldown),
    }
}

proptest! {
    // P17: a stored result is never overwritten, whatever is written afterwards.
    #[test]
    fn results_are_never_overwritten(writes in proptest::collection::vec((0u64..8, any::<u8>()), 1..40)) {
        let store = MemoryRecordStore::new();
        let mut first = std::collections::BTreeMap::new();
        for (slot, choice) in writes {
            let r = result(choice);
            let outcome = block_on(store.record_result(Slot(slot), &r));
            match first.get(&slot) {
                None => { prop_assert_eq!(outcome.unwrap(), Recorded::Inserted); first.insert(slot, r); }
                Some(stored) if *stored == r => prop_assert_eq!(outcome.unwrap(), Recorded::AlreadyPresent),
                Some(_) => {
                    let conflict = matches!(outcome, Err(Error::ResultConflict { .. }));
                    prop_assert!(conflict, "a different result must conflict");
                }
            }
        }
        let all = block_on(store.results(SlotRange { start: Slot(0), end: Slot(8) })).unwrap();
        let expected: Vec<_> = first.into_iter().map(|(s, r)| (Slot(s), r)).collect();
        prop_assert_eq!(all, expected);
    }
}
