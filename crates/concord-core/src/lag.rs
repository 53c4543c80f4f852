//! Replication lag per origin, its maxima over time windows, and channel status.

use std::collections::VecDeque;
use std::time::Duration;

use concord_clock::WallTime;
use concord_crdt::RegionId;
use serde::{Deserialize, Serialize};

/// When a channel counts as lagging or failed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LagThresholds {
    /// The recovery point objective: lag at or above it is critical.
    pub rpo: Duration,
    /// Lag above this many times the running average is a warning.
    pub warn_factor: f64,
    /// Lag below this is never a warning, whatever the average (noise floor).
    pub warn_floor: Duration,
    /// A peer silent this long is failed.
    pub failed_after: Duration,
}

impl Default for LagThresholds {
    fn default() -> Self {
        Self {
            rpo: Duration::from_secs(5),
            warn_factor: 10.0,
            warn_floor: Duration::from_millis(100),
            failed_after: Duration::from_secs(10),
        }
    }
}

/// The state of the replication channel from one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChannelStatus {
    /// Connected, lag normal.
    Active,
    /// Connected, lag above the warning threshold.
    Lagging,
    /// Not connected, or silent for longer than allowed.
    Failed,
    /// Connected and catching up from a lag at or above the RPO.
    Rebuilding,
}

/// The largest value seen within a sliding window, kept in buckets.
#[derive(Clone, Debug)]
struct WindowMax {
    bucket_micros: i64,
    buckets: usize,
    /// (bucket index, max in bucket), oldest first.
    ring: VecDeque<(i64, i64)>,
}

impl WindowMax {
    fn new(window: Duration, buckets: usize) -> Self {
        let micros = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        let buckets = buckets.max(1);
        Self {
            bucket_micros: (micros / i64::try_from(buckets).unwrap_or(1)).max(1),
            buckets,
            ring: VecDeque::new(),
        }
    }

    fn record(&mut self, now: WallTime, value: i64) {
        let idx = now.as_micros().div_euclid(self.bucket_micros);
        match self.ring.back_mut() {
            Some((i, m)) if *i == idx => *m = (*m).max(value),
            Some((i, _)) if *i > idx => {
                // The clock went back: fold into the newest bucket.
                if let Some((_, m)) = self.ring.back_mut() {
                    *m = (*m).max(value);
                }
            }
            _ => self.ring.push_back((idx, value)),
        }
        self.expire(idx);
    }

    fn expire(&mut self, idx: i64) {
        let oldest = idx - i64::try_from(self.buckets).unwrap_or(i64::MAX) + 1;
        while self.ring.front().is_some_and(|(i, _)| *i < oldest) {
            self.ring.pop_front();
        }
    }

    fn max(&self, now: WallTime) -> i64 {
        let idx = now.as_micros().div_euclid(self.bucket_micros);
        let oldest = idx - i64::try_from(self.buckets).unwrap_or(i64::MAX) + 1;
        self.ring
            .iter()
            .filter(|(i, _)| *i >= oldest)
            .map(|(_, m)| *m)
            .max()
            .unwrap_or(0)
    }
}

/// Lag of one origin's writes at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginLag {
    /// The origin.
    pub origin: RegionId,
    /// Writes the origin made that this node knows of but has not applied.
    pub writes_behind: u64,
    /// Origin time of the newest known write minus that of the newest applied, µs.
    pub micros_behind: i64,
    /// The largest `micros_behind` in the last minute.
    pub max_1m_micros: i64,
    /// The largest `micros_behind` in the last hour.
    pub max_1h_micros: i64,
    /// The largest `micros_behind` since the engine opened.
    pub max_ever_micros: i64,
    /// The largest `writes_behind` since the engine opened.
    pub max_ever_writes: u64,
}

/// Tracks lag of one origin.
#[derive(Clone, Debug)]
pub(crate) struct LagTracker {
    origin: RegionId,
    current: (u64, i64),
    minute: WindowMax,
    hour: WindowMax,
    ever: (u64, i64),
    /// Exponentially weighted average of micros_behind.
    average: f64,
}

impl LagTracker {
    pub(crate) fn new(origin: RegionId) -> Self {
        Self {
            origin,
            current: (0, 0),
            minute: WindowMax::new(Duration::from_secs(60), 60),
            hour: WindowMax::new(Duration::from_secs(3600), 60),
            ever: (0, 0),
            average: 0.0,
        }
    }

    /// Records the lag now: `head` is the newest known write of the origin
    /// (seq, wall), `applied` the newest applied here.
    pub(crate) fn observe(
        &mut self,
        now: WallTime,
        head: (u64, WallTime),
        applied: (u64, Option<WallTime>),
    ) {
        let writes = head.0.saturating_sub(applied.0);
        let micros = if writes == 0 {
            0
        } else {
            match applied.1 {
                Some(wall) => head.1.micros_since(wall).max(0),
                // Nothing applied yet: at least as old as the head itself.
                None => now.micros_since(head.1).max(0),
            }
        };
        self.current = (writes, micros);
        self.minute.record(now, micros);
        self.hour.record(now, micros);
        self.ever = (self.ever.0.max(writes), self.ever.1.max(micros));
        // Average over roughly the last hundred observations.
        self.average += (micros as f64 - self.average) / 100.0;
    }

    pub(crate) fn report(&self, now: WallTime) -> OriginLag {
        OriginLag {
            origin: self.origin,
            writes_behind: self.current.0,
            micros_behind: self.current.1,
            max_1m_micros: self.minute.max(now).max(self.current.1),
            max_1h_micros: self.hour.max(now).max(self.current.1),
            max_ever_micros: self.ever.1,
            max_ever_writes: self.ever.0,
        }
    }

    /// The status of a channel from this origin, given whether it is connected.
    pub(crate) fn status(&self, connected: bool, thresholds: &LagThresholds) -> ChannelStatus {
        if !connected {
            return ChannelStatus::Failed;
        }
        let micros = self.current.1;
        let rpo = i64::try_from(thresholds.rpo.as_micros()).unwrap_or(i64::MAX);
        let floor = i64::try_from(thresholds.warn_floor.as_micros()).unwrap_or(i64::MAX);
        if micros >= rpo {
            ChannelStatus::Rebuilding
        } else if micros > floor && micros as f64 > thresholds.warn_factor * self.average.max(1.0) {
            ChannelStatus::Lagging
        } else {
            ChannelStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_435_200_000_000;

    fn at(secs: i64) -> WallTime {
        WallTime::from_micros(T0 + secs * 1_000_000)
    }

    #[test]
    fn lag_is_head_time_minus_applied_time() {
        let mut t = LagTracker::new(RegionId::new(1));
        t.observe(at(10), (12, at(9)), (10, Some(at(7))));
        let r = t.report(at(10));
        assert_eq!(r.writes_behind, 2);
        assert_eq!(r.micros_behind, 2_000_000);
        t.observe(at(11), (12, at(9)), (12, Some(at(9))));
        let r = t.report(at(11));
        assert_eq!((r.writes_behind, r.micros_behind), (0, 0));
        assert_eq!(r.max_ever_micros, 2_000_000);
        assert_eq!(r.max_1m_micros, 2_000_000);
    }

    #[test]
    fn window_maxima_expire() {
        let mut t = LagTracker::new(RegionId::new(1));
        t.observe(at(0), (5, at(0)), (0, Some(at(-3))));
        t.observe(at(1), (5, at(0)), (5, Some(at(0))));
        assert_eq!(t.report(at(30)).max_1m_micros, 3_000_000);
        assert_eq!(t.report(at(120)).max_1m_micros, 0);
        assert_eq!(t.report(at(120)).max_1h_micros, 3_000_000);
        assert_eq!(t.report(at(4000)).max_1h_micros, 0);
        assert_eq!(t.report(at(4000)).max_ever_micros, 3_000_000);
    }

    #[test]
    fn status_follows_thresholds() {
        let th = LagThresholds::default();
        let mut t = LagTracker::new(RegionId::new(1));
        assert_eq!(t.status(false, &th), ChannelStatus::Failed);
        for s in 0..200 {
            t.observe(at(s), (1, at(s)), (1, Some(at(s))));
        }
        assert_eq!(t.status(true, &th), ChannelStatus::Active);
        t.observe(at(300), (9, at(300)), (1, Some(at(299))));
        assert_eq!(t.status(true, &th), ChannelStatus::Lagging);
        t.observe(at(301), (9, at(301)), (1, Some(at(290))));
        assert_eq!(t.status(true, &th), ChannelStatus::Rebuilding);
    }
}
