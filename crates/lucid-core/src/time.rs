//! Slot and epoch time, derived from UTC unix milliseconds and the network's genesis.
//!
//! Every slot number is computed from a wall-clock reading with [`TimeParams::slot_of`]; nothing
//! counts slots by adding up sleeps. Mainnet constants are fixed at compile time; a test network
//! may choose its genesis, slot length and epoch length (within bounds) so that it runs through
//! epochs in seconds. The work window is always 7 epochs.

use std::fmt;

/// UTC unix time in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// `self + ms`, saturating at the ends of the range.
    pub fn saturating_add_ms(self, ms: i64) -> Self {
        UnixMillis(self.0.saturating_add(ms))
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A slot number, counted from genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Slot(pub u64);

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

/// An epoch number, counted from genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// A half-open range of slots `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotRange {
    /// First slot in the range.
    pub start: Slot,
    /// First slot after the range.
    pub end: Slot,
}

impl SlotRange {
    /// Number of slots in the range.
    pub fn len(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }

    /// Whether the range holds no slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `slot` lies in the range.
    pub fn contains(&self, slot: Slot) -> bool {
        self.start <= slot && slot < self.end
    }
}

/// Why a time computation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The time lies before genesis; there is no negative slot.
    #[error("time {time} lies before genesis {genesis}")]
    BeforeGenesis {
        /// The time asked about.
        time: UnixMillis,
        /// The network's genesis.
        genesis: UnixMillis,
    },
    /// The slot or epoch is so far in the future that its time does not fit.
    #[error("{what} {value} is out of the representable time range")]
    OutOfRange {
        /// What overflowed.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A test-network parameter is outside its allowed range.
    #[error("test network parameter {key} = {value} is invalid: {rule}")]
    InvalidParameter {
        /// The configuration key.
        key: &'static str,
        /// The value given.
        value: i64,
        /// The rule it breaks.
        rule: &'static str,
    },
}

impl crate::HasKind for TimeError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidInput
    }
}

/// Mainnet genesis: 2024-01-01T00:00:00Z.
pub const GENESIS_MS: i64 = 1_704_067_200_000;
/// Mainnet slot length: 120 s.
pub const SLOT_MS: u64 = 120_000;
/// Mainnet slots per epoch: 720 (24 h).
pub const SLOTS_PER_EPOCH: u64 = 720;
/// The work window of an epoch is this many epochs before it starts (7 days on mainnet).
pub const WINDOW_EPOCHS: u64 = 7;
/// Shortest slot a test network may use.
pub const MIN_TEST_SLOT_MS: u64 = 1_000;
/// Fewest slots per epoch a test network may use.
pub const MIN_TEST_SLOTS_PER_EPOCH: u64 = 8;

/// The time base of a network: genesis, slot length and epoch length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeParams {
    genesis_ms: i64,
    slot_ms: u64,
    slots_per_epoch: u64,
}

impl TimeParams {
    /// The mainnet time base; not configurable.
    pub const MAINNET: TimeParams =
        TimeParams { genesis_ms: GENESIS_MS, slot_ms: SLOT_MS, slots_per_epoch: SLOTS_PER_EPOCH };

    /// A test-network time base. `slot_ms` must be at least 1 000 and `slots_per_epoch` at least
    /// 8; the genesis must not be negative.
    pub fn test_network(
        genesis: UnixMillis,
        slot_ms: u64,
        slots_per_epoch: u64,
    ) -> Result<Self, TimeError> {
        if genesis.0 < 0 {
            return Err(TimeError::InvalidParameter {
                key: "network.genesis",
                value: genesis.0,
                rule: "must not lie before 1970",
            });
        }
        if !(MIN_TEST_SLOT_MS..=86_400_000).contains(&slot_ms) {
            return Err(TimeError::InvalidParameter {
                key: "network.slot_ms",
                value: i64::try_from(slot_ms).unwrap_or(i64::MAX),
                rule: "must lie in 1000..=86400000",
            });
        }
        if !(MIN_TEST_SLOTS_PER_EPOCH..=100_000).contains(&slots_per_epoch) {
            return Err(TimeError::InvalidParameter {
                key: "network.slots_per_epoch",
                value: i64::try_from(slots_per_epoch).unwrap_or(i64::MAX),
                rule: "must lie in 8..=100000",
            });
        }
        Ok(TimeParams { genesis_ms: genesis.0, slot_ms, slots_per_epoch })
    }

    /// Genesis: the start of slot 0.
    pub fn genesis(&self) -> UnixMillis {
        UnixMillis(self.genesis_ms)
    }

    /// Slot length in milliseconds.
    pub fn slot_ms(&self) -> u64 {
        self.slot_ms
    }

    /// Slots per epoch.
    pub fn slots_per_epoch(&self) -> u64 {
        self.slots_per_epoch
    }

    /// Slots in a full work window (7 epochs).
    pub fn window_slots(&self) -> u64 {
        WINDOW_EPOCHS * self.slots_per_epoch
    }

    /// Scales a duration given for mainnet's 120 s slot to this network's slot length.
    pub fn scale_ms(&self, mainnet_ms: u64) -> u64 {
        let scaled = u128::from(mainnet_ms) * u128::from(self.slot_ms) / u128::from(SLOT_MS);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// The slot that contains `time`.
    pub fn slot_of(&self, time: UnixMillis) -> Result<Slot, TimeError> {
        if time.0 < self.genesis_ms {
            return Err(TimeError::BeforeGenesis { time, genesis: self.genesis() });
        }
        // time >= genesis, so the difference is non-negative and fits in u64.
        let since = time.0.abs_diff(self.genesis_ms);
        Ok(Slot(since / self.slot_ms))
    }

    /// The time at which `slot` starts.
    pub fn slot_start(&self, slot: Slot) -> Result<UnixMillis, TimeError> {
        let out_of_range = TimeError::OutOfRange { what: "slot", value: slot.0 };
        let offset = slot.0.checked_mul(self.slot_ms).ok_or(out_of_range.clone())?;
        let offset = i64::try_from(offset).map_err(|_| out_of_range.clone())?;
        self.genesis_ms.checked_add(offset).map(UnixMillis).ok_or(out_of_range)
    }

    /// The epoch that contains `slot`.
    pub fn epoch_of(&self, slot: Slot) -> Epoch {
        Epoch(slot.0 / self.slots_per_epoch)
    }

    /// The first slot of `epoch`.
    pub fn epoch_start(&self, epoch: Epoch) -> Result<Slot, TimeError> {
        epoch
            .0
            .checked_mul(self.slots_per_epoch)
            .map(Slot)
            .ok_or(TimeError::OutOfRange { what: "epoch", value: epoch.0 })
    }

    /// The work window of `epoch`: the (up to) 7 epochs of slots before it starts.
    /// Empty for epoch 0, shorter than 7 epochs before epoch 7.
    pub fn window(&self, epoch: Epoch) -> Result<SlotRange, TimeError> {
        let end = self.epoch_start(epoch)?;
        let start = Slot(end.0.saturating_sub(self.window_slots()));
        Ok(SlotRange { start, end })
    }
}

#[cfg(test)]
mod tests;
