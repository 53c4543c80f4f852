//! The single error type of this crate.

use crate::hlc::HlcTime;

/// Everything that can go wrong when producing or validating clock values.
///
/// Every variant carries the values needed to diagnose the problem; there is
/// deliberately no catch-all variant.
///
/// # Examples
///
/// ```
/// use concord_clock::{ClockError, HlcTime};
///
/// let err = HlcTime::from_parts(0, 0).unwrap_err();
/// assert_eq!(err, ClockError::PhysicalOutOfRange { unix_ms: 0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ClockError {
    /// A remote hybrid logical clock timestamp is further ahead of the local
    /// physical clock than the configured maximum drift allows.
    ///
    /// The local clock state is left untouched when this is returned.
    #[error(
        "remote clock at {remote_ms} ms since the Unix epoch is more than {max_drift_ms} ms \
         ahead of the local clock at {local_ms} ms since the Unix epoch"
    )]
    DriftExceeded {
        /// Local physical time, in milliseconds since the Unix epoch.
        local_ms: i64,
        /// Physical part of the remote timestamp, in milliseconds since the
        /// Unix epoch.
        remote_ms: i64,
        /// The configured maximum drift, in milliseconds.
        max_drift_ms: u64,
    },

    /// A physical time cannot be represented in a hybrid logical clock
    /// timestamp: it is before 2024-01-01T00:00:00Z or after the last
    /// millisecond the underlying HLC implementation supports.
    #[error(
        "physical time {unix_ms} ms since the Unix epoch is outside the hybrid logical clock \
         range [{min}, {max}] ms",
        min = HlcTime::MIN_PHYSICAL_MS,
        max = HlcTime::MAX_PHYSICAL_MS
    )]
    PhysicalOutOfRange {
        /// The offending physical time, in milliseconds since the Unix epoch.
        unix_ms: i64,
    },

    /// The logical counter would overflow: too many events were timestamped
    /// within a single millisecond of physical time.
    #[error(
        "logical counter exhausted at physical time {physical_ms} ms since the Unix epoch \
         (maximum {max})",
        max = HlcTime::MAX_LOGICAL
    )]
    LogicalExhausted {
        /// Physical time whose logical counter ran out, in milliseconds since
        /// the Unix epoch.
        physical_ms: i64,
    },

    /// A logical counter value passed to a constructor does not fit in the
    /// timestamp layout.
    #[error("logical counter {logical} exceeds the maximum {max}", max = HlcTime::MAX_LOGICAL)]
    LogicalOutOfRange {
        /// The offending logical counter value.
        logical: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_message_names_both_clocks() {
        let err = ClockError::DriftExceeded {
            local_ms: 1_800_000_000_000,
            remote_ms: 1_800_000_005_000,
            max_drift_ms: 500,
        };
        let msg = err.to_string();
        assert!(msg.contains("remote clock at 1800000005000 ms"), "{msg}");
        assert!(msg.contains("local clock at 1800000000000 ms"), "{msg}");
        assert!(msg.contains("500 ms"), "{msg}");
    }

    #[test]
    fn out_of_range_message_names_value_and_bounds() {
        let msg = ClockError::PhysicalOutOfRange { unix_ms: 42 }.to_string();
        assert!(msg.contains("42 ms"), "{msg}");
        assert!(msg.contains(&HlcTime::MIN_PHYSICAL_MS.to_string()), "{msg}");
        assert!(msg.contains(&HlcTime::MAX_PHYSICAL_MS.to_string()), "{msg}");
    }

    #[test]
    fn logical_messages_name_values() {
        let msg = ClockError::LogicalExhausted { physical_ms: 7 }.to_string();
        assert!(msg.contains("7 ms"), "{msg}");
        assert!(msg.contains(&HlcTime::MAX_LOGICAL.to_string()), "{msg}");
        let msg = ClockError::LogicalOutOfRange {
            logical: 99_999_999,
        }
        .to_string();
        assert!(msg.contains("99999999"), "{msg}");
    }

    #[test]
    fn error_is_std_error_send_sync() {
        fn assert_traits<T: std::error::Error + Send + Sync + 'static>() {}
        assert_traits::<ClockError>();
    }
}
