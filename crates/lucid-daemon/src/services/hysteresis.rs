//! The alert state of one resource, with hysteresis: a pure function, so its invariants are
//! property-tested.
//!
//! Values and thresholds are integers in hundredths of the resource's unit (percent for cpu,
//! memory and disk, Mbps for the network): 70 % is `7_000`. A state is entered when the value
//! reaches its threshold and left only when the value falls below the threshold minus the margin
//! (`daemon.md` §10: enter at ≥ threshold, leave at < threshold − 5 points), so a value hovering
//! around a threshold does not make the alert flap.

use std::fmt;

/// A monitored resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// CPU use of the machine, percent.
    Cpu,
    /// Memory use of the machine, percent.
    Memory,
    /// Use of the filesystem that holds the data directory, percent.
    Disk,
    /// Network bandwidth (in + out), Mbps.
    Network,
}

impl Resource {
    /// Every resource, in a fixed order.
    pub const ALL: [Resource; 4] =
        [Resource::Cpu, Resource::Memory, Resource::Disk, Resource::Network];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
            Resource::Network => "network",
        }
    }

    /// Position in [`Resource::ALL`].
    pub fn index(self) -> usize {
        match self {
            Resource::Cpu => 0,
            Resource::Memory => 1,
            Resource::Disk => 2,
            Resource::Network => 3,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alert state of a resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertLevel {
    /// Below the warning line.
    #[default]
    Normal,
    /// At or above the warning line.
    Warning,
    /// At or above the critical line.
    Critical,
}

impl AlertLevel {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Normal => "normal",
            AlertLevel::Warning => "warning",
            AlertLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The warning and critical lines of one resource and the hysteresis margin, in hundredths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Enter `Warning` at or above this.
    pub warning: u64,
    /// Enter `Critical` at or above this.
    pub critical: u64,
    /// Leave a state only below its line minus this.
    pub margin: u64,
}

/// Thresholds that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// The warning line must lie below the critical line.
    #[error("{resource}: warning ({warning}) must be below critical ({critical})")]
    WarningNotBelowCritical {
        /// The resource.
        resource: Resource,
        /// Warning line, hundredths.
        warning: u64,
        /// Critical line, hundredths.
        critical: u64,
    },
    /// The margin must be positive and must not exceed the warning line.
    #[error("{resource}: hysteresis margin ({margin}) must be in 1..={warning}")]
    BadMargin {
        /// The resource.
        resource: Resource,
        /// The margin, hundredths.
        margin: u64,
        /// Warning line, hundredths.
        warning: u64,
    },
    /// A percentage line must not exceed 100 %.
    #[error("{resource}: a percentage line ({value}) must not exceed 10000 (100 %)")]
    AboveHundredPercent {
        /// The resource.
        resource: Resource,
        /// The line, hundredths.
        value: u64,
    },
}

impl Thresholds {
    /// Checks that the lines of `resource` can work.
    pub fn validate(&self, resource: Resource) -> Result<(), ThresholdError> {
        if self.warning >= self.critical {
            return Err(ThresholdError::WarningNotBelowCritical {
                resource,
                warning: self.warning,
                critical: self.critical,
            });
        }
        if self.margin == 0 || self.margin > self.warning {
            return Err(ThresholdError::BadMargin {
                resource,
                margin: self.margin,
                warning: self.warning,
            });
        }
        if resource != Resource::Network && self.critical > 10_000 {
            return Err(ThresholdError::AboveHundredPercent { resource, value: self.critical });
        }
        Ok(())
    }
}

/// The state after observing `value` in state `current` (`daemon.md` §10).
///
/// Enter at ≥ line; leave at < line − margin. From `Critical` the value falls to `Warning` when
/// it is below the critical line minus the margin but has not yet fallen below the warning line
/// minus the margin.
pub fn next_level(current: AlertLevel, value: u64, lines: &Thresholds) -> AlertLevel {
    let below_leave = |line: u64| value < line.saturating_sub(lines.margin);
    if value >= lines.critical {
        return AlertLevel::Critical;
    }
    match current {
        AlertLevel::Critical if !below_leave(lines.critical) => AlertLevel::Critical,
        AlertLevel::Critical | AlertLevel::Warning if !below_leave(lines.warning) => {
            AlertLevel::Warning
        }
        AlertLevel::Normal if value >= lines.warning => AlertLevel::Warning,
        _ => AlertLevel::Normal,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lines() -> impl Strategy<Value = Thresholds> {
        (1u64..9_000, 1u64..1_000, 1u64..2_000).prop_map(|(warning, gap, margin)| Thresholds {
            warning,
            critical: warning + gap,
            margin: margin.min(warning),
        })
    }

    fn level() -> impl Strategy<Value = AlertLevel> {
        prop_oneof![Just(AlertLevel::Normal), Just(AlertLevel::Warning), Just(AlertLevel::Critical)]
    }

    #[test]
    fn the_documented_lines_of_cpu() {
        let cpu = Thresholds { warning: 7_000, critical: 9_000, margin: 500 };
        assert_eq!(cpu.validate(Resource::Cpu), Ok(()));
        let steps = [
            (6_999, AlertLevel::Normal),
            (7_000, AlertLevel::Warning),
            (6_600, AlertLevel::Warning), // inside the margin: stays
            (6_500, AlertLevel::Warning), // exactly threshold − margin: stays (leave at <)
            (6_499, AlertLevel::Normal),
            (9_500, AlertLevel::Critical),
            (8_600, AlertLevel::Critical),
            (8_499, AlertLevel::Warning),
            (9_000, AlertLevel::Critical),
            (1_000, AlertLevel::Normal),
        ];
        let mut state = AlertLevel::Normal;
        for (value, expected) in steps {
            state = next_level(state, value, &cpu);
            assert_eq!(state, expected, "after {value}");
        }
    }

    #[test]
    fn invalid_lines_are_refused() {
        let bad = Thresholds { warning: 9_000, critical: 9_000, margin: 500 };
        assert!(matches!(
            bad.validate(Resource::Cpu),
            Err(ThresholdError::WarningNotBelowCritical { .. })
        ));
        let bad = Thresholds { warning: 7_000, critical: 9_000, margin: 0 };
        assert!(matches!(bad.validate(Resource::Disk), Err(ThresholdError::BadMargin { .. })));
        let bad = Thresholds { warning: 100, critical: 9_000, margin: 101 };
        assert!(matches!(bad.validate(Resource::Memory), Err(ThresholdError::BadMargin { .. })));
        let bad = Thresholds { warning: 9_000, critical: 10_001, margin: 500 };
        assert!(matches!(
            bad.validate(Resource::Memory),
            Err(ThresholdError::AboveHundredPercent { .. })
        ));
        // Network lines are Mbps and may exceed 100.
        let network = Thresholds { warning: 80_000, critical: 95_000, margin: 500 };
        assert_eq!(network.validate(Resource::Network), Ok(()));
    }

    proptest! {
        /// At or above the critical line the state is critical, whatever it was.
        #[test]
        fn critical_at_or_above_the_line(state in level(), lines in lines(), extra in 0u64..5_000) {
            prop_assert_eq!(next_level(state, lines.critical + extra, &lines), AlertLevel::Critical);
        }

        /// Below the warning line minus the margin the state is normal, whatever it was.
        #[test]
        fn normal_far_below_the_warning_line(state in level(), lines in lines(), value in 0u64..10_000) {
            let value = value % lines.warning.saturating_sub(lines.margin).max(1);
            prop_assume!(value < lines.warning - lines.margin);
            prop_assert_eq!(next_level(state, value, &lines), AlertLevel::Normal);
        }

        /// Observing the same value again changes nothing: one value, one state.
        #[test]
        fn a_repeated_value_is_stable(state in level(), lines in lines(), value in 0u64..12_000) {
            let once = next_level(state, value, &lines);
            prop_assert_eq!(next_level(once, value, &lines), once);
        }

        /// A value that moves within one margin-wide band (below the critical line) never makes
        /// the state go back and forth: once it moved one way it never moves the other way.
        #[test]
        fn no_flapping_within_a_band(
            state in level(),
            lines in lines(),
            low in 0u64..10_000,
            offsets in proptest::collection::vec(0u64..10_000, 1..40),
        ) {
            let width = lines.margin;
            let low = low.min(lines.critical.saturating_sub(width + 1));
            let mut current = state;
            let mut direction = std::cmp::Ordering::Equal;
            for offset in offsets {
                let value = low + offset % (width + 1);
                prop_assume!(value < lines.critical);
                let next = next_level(current, value, &lines);
                let moved = next.cmp(&current);
                if moved != std::cmp::Ordering::Equal {
                    prop_assert!(
                        direction == std::cmp::Ordering::Equal || direction == moved,
                        "the state went back and forth within a band of {}", width
                    );
                    direction = moved;
                }
                current = next;
            }
        }

        /// Higher values never give a lower state (from the same state).
        #[test]
        fn monotone_in_the_value(state in level(), lines in lines(), a in 0u64..12_000, b in 0u64..12_000) {
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(next_level(state, low, &lines) <= next_level(state, high, &lines));
        }

        /// A state is only entered at or above its line, and a non-normal state is only kept
        /// at or above its line minus the margin.
        #[test]
        fn entered_and_kept_only_near_the_line(state in level(), lines in lines(), value in 0u64..12_000) {
            let next = next_level(state, value, &lines);
            let line = |level| match level {
                AlertLevel::Warning => lines.warning,
                AlertLevel::Critical => lines.critical,
                AlertLevel::Normal => 0,
            };
            if next > state {
                prop_assert!(value >= line(next));
            }
            if next != AlertLevel::Normal {
                prop_assert!(value >= line(next) - lines.margin);
            }
        }
    }
}
