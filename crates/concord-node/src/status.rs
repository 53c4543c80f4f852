//! A node's status: channels, lag, the RPO report and counters, as the
//! `Status` call, the `concord status` table and the metrics show them.

use concord_core::ChannelStatus;

use crate::config::RegionNames;
use crate::driver::NodeEngine;
use crate::pb;

fn seconds(micros: i64) -> f64 {
    micros.max(0) as f64 / 1e6
}

/// A channel status's name.
pub fn channel_status_name(s: ChannelStatus) -> &'static str {
    match s {
        ChannelStatus::Active => "active",
        ChannelStatus::Lagging => "lagging",
        ChannelStatus::Failed => "failed",
        ChannelStatus::Rebuilding => "rebuilding",
    }
}

/// The engine's status now.
pub fn status_of_engine(e: &NodeEngine, names: &RegionNames) -> pb::StatusResponse {
    let statuses = e.channels();
    let lag = e.lag();
    let connected = e.connected_peers();
    let channels = lag
        .iter()
        .filter(|l| l.origin != e.region())
        .map(|l| {
            let status = statuses
                .iter()
                .find(|(p, _)| *p == l.origin)
                .map_or("failed", |(_, s)| channel_status_name(*s));
            pb::Channel {
                region: names.name(l.origin),
                status: status.to_owned(),
                writes_behind: l.writes_behind,
                seconds_behind: seconds(l.micros_behind),
                max_1m_seconds: seconds(l.max_1m_micros),
                max_1h_seconds: seconds(l.max_1h_micros),
                max_ever_seconds: seconds(l.max_ever_micros),
                max_ever_writes: l.max_ever_writes,
                connected: connected.contains(&l.origin),
            }
        })
        .collect();
    let rpo = e
        .rpo()
        .iter()
        .filter(|r| r.origin != e.region())
        .map(|r| pb::RpoEntry {
            origin: names.name(r.origin),
            writes_not_applied: r.unapplied_writes,
            oldest_age_seconds: seconds(r.oldest_unapplied_micros),
        })
        .collect();
    let s = e.stats();
    pb::StatusResponse {
        region: names.name(e.region()),
        region_id: u32::from(e.region().get()),
        channels,
        rpo,
        applied: e
            .cursors()
            .into_iter()
            .map(|(o, seq)| pb::WriteRef {
                origin: u32::from(o.get()),
                seq,
            })
            .collect(),
        open_conflicts: e.queue_depth() as u64,
        lww_losers: s.lww_losers,
        local_writes: s.local_writes,
        remote_applied: s.remote_applied,
        refused_writes: s.wrong_op_kind + s.merge_refused + s.batches_refused,
        withheld_writes: s.withheld,
        failovers: e
            .failover_events()
            .iter()
            .map(|f| failover_to_pb(f, names))
            .collect(),
        ownership_epoch: e.ownership_epoch(),
        rejections: None,
    }
}

/// A failover event on the wire.
pub fn failover_to_pb(f: &concord_core::FailoverEvent, names: &RegionNames) -> pb::FailoverEvent {
    pb::FailoverEvent {
        from: names.name(f.from),
        to: names.name(f.to),
        reason: f.reason.clone(),
        started_micros: f.started.as_micros(),
        completed_micros: f.completed.map_or(0, |c| c.as_micros()),
        at_risk_writes: f.at_risk_writes,
        at_risk_seconds: seconds(f.at_risk_micros),
        epoch: f.epoch,
    }
}

/// The engine's figures for the metrics endpoint.
pub fn metrics_of_engine(e: &NodeEngine, names: &RegionNames) -> crate::metrics::MetricsSnapshot {
    let status = status_of_engine(e, names);
    let s = e.stats();
    crate::metrics::MetricsSnapshot {
        region: status.region.clone(),
        channels: status
            .channels
            .iter()
            .map(|c| {
                let rpo = status.rpo.iter().find(|r| r.origin == c.region);
                crate::metrics::ChannelMetrics {
                    origin: c.region.clone(),
                    status: c.status.clone(),
                    connected: c.connected,
                    writes_behind: c.writes_behind,
                    seconds_behind: c.seconds_behind,
                    max_1m_seconds: c.max_1m_seconds,
                    max_1h_seconds: c.max_1h_seconds,
                    max_ever_seconds: c.max_ever_seconds,
                    max_ever_writes: c.max_ever_writes,
                    rpo_writes: rpo.map_or(0, |r| r.writes_not_applied),
                    rpo_oldest_seconds: rpo.map_or(0.0, |r| r.oldest_age_seconds),
                }
            })
            .collect(),
        local_writes_total: s.local_writes,
        remote_applied_total: s.remote_applied,
        open_conflicts: status.open_conflicts,
        conflicts_opened_total: s.conflicts_opened,
        conflicts_closed_total: s.conflicts_closed,
        lww_losers_total: s.lww_losers,
        refused_writes_total: status.refused_writes,
        filtered_writes_total: s.withheld,
        duplicates_total: s.duplicates,
    }
}
