//! `SlotRing`: a fixed ring of one bit per slot of a work window (5 040 bits, 630 B on
//! mainnet), the unit of beacon bookkeeping in the tally, the rolling engine and the uptime view.
//!
//! Slot `s` lives at bit `s mod window_slots`, so any `window_slots` consecutive slots map to
//! distinct bits. The ring does not know which window it stands for: its owner keeps the
//! invariant that only slots of one window of `window_slots` consecutive slots are set, and
//! clears a slot's bit before the slot leaves the window.

use lucid_core::{Slot, SlotRange};

/// One bit per slot of a window of `window_slots` consecutive slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRing {
    window_slots: u64,
    words: Box<[u64]>,
}

impl SlotRing {
    /// An empty ring for windows of `window_slots` slots (at least 1).
    pub fn new(window_slots: u64) -> Self {
        let window_slots = window_slots.max(1);
        let words = usize::try_from(window_slots.div_ceil(64)).unwrap_or(usize::MAX);
        SlotRing { window_slots, words: vec![0; words].into_boxed_slice() }
    }

    /// The number of slots the ring spans.
    pub fn window_slots(&self) -> u64 {
        self.window_slots
    }

    fn position(&self, slot: Slot) -> (usize, u64) {
        let bit = slot.0 % self.window_slots;
        // bit < window_slots, whose word count fit in usize when the ring was made.
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Whether the bit of `slot` is set.
    pub fn contains(&self, slot: Slot) -> bool {
        let (word, mask) = self.position(slot);
        self.words.get(word).is_some_and(|w| w & mask != 0)
    }

    /// Sets the bit of `slot`; returns whether it was clear before.
    pub fn insert(&mut self, slot: Slot) -> bool {
        let (word, mask) = self.position(slot);
        match self.words.get_mut(word) {
            Some(w) if *w & mask == 0 => {
                *w |= mask;
                true
            }
            _ => false,
        }
    }

    /// Clears the bit of `slot`; returns whether it was set before.
    pub fn remove(&mut self, slot: Slot) -> bool {
        let (word, mask) = self.position(slot);
        match self.words.get_mut(word) {
            Some(w) if *w & mask != 0 => {
                *w &= !mask;
                true
            }
            _ => false,
        }
    }

    /// Clears every bit.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Number of set bits (popcount of the whole ring).
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Number of set bits among the slots of `range`. Only the last `window_slots` slots of the
    /// range are looked at (older ones share bits with them).
    pub fn count_in(&self, range: SlotRange) -> u64 {
        let len = range.len().min(self.window_slots);
        if len == 0 {
            return 0;
        }
        if len == self.window_slots {
            return self.count();
        }
        let first = (range.end.0 - len) % self.window_slots;
        let end = first + len;
        if end <= self.window_slots {
            self.count_bits(first, end)
        } else {
            self.count_bits(first, self.window_slots) + self.count_bits(0, end - self.window_slots)
        }
    }

    /// Popcount of bit positions `[from, to)`, `to ≤ window_slots`.
    fn count_bits(&self, from: u64, to: u64) -> u64 {
        let mut total = 0;
        let mut bit = from;
        while bit < to {
            let word = (bit / 64) as usize;
            let offset = bit % 64;
            let take = (64 - offset).min(to - bit);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << offset };
            total += u64::from((self.words.get(word).copied().unwrap_or(0) & mask).count_ones());
            bit += take;
        }
        total
    }
}

#[cfg(test)]
mod tests;
