//! Tests of the slot ring.

use super::*;

#[test]
fn insert_remove_count() {
    let mut ring = SlotRing::new(56);
    assert!(ring.is_empty());
    assert!(ring.insert(Slot(3)));
    assert!(!ring.insert(Slot(3)));
    assert!(ring.contains(Slot(3)));
    assert!(ring.contains(Slot(59)), "59 mod 56 == 3");
    assert!(ring.insert(Slot(100)));
    assert_eq!(ring.count(), 2);
    assert!(ring.remove(Slot(3)));
    assert!(!ring.remove(Slot(3)));
    assert_eq!(ring.count(), 1);
    ring.clear();
    assert!(ring.is_empty());
}

#[test]
fn count_in_ranges_wrapping() {
    let mut ring = SlotRing::new(100);
    for s in 150..250 {
        if s % 3 == 0 {
            ring.insert(Slot(s));
        }
    }
    let naive = |a: u64, b: u64| (a..b).filter(|s| s % 3 == 0).count() as u64;
    for (a, b) in [(150, 250), (150, 151), (160, 230), (190, 249), (200, 200), (100, 250)] {
        let range = SlotRange { start: Slot(a), end: Slot(b) };
        assert_eq!(ring.count_in(range), naive(a.max(b.saturating_sub(100)), b), "{a}..{b}");
    }
}
