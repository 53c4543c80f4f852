//! The conflict queue's API over an engine: list, get, watch, resolve, run
//! resolvers, purge.

use std::time::Duration;

use concord_core::{Accepted, Collection, ConflictItem, Engine, Storage};
use concord_crdt::RegionId;

use crate::{Decision, QueueError, Resolver};

/// Which items [`list`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only open items.
    pub open_only: bool,
    /// Only items of this collection.
    pub collection: Option<Collection>,
    /// Only items with an id above this (for paging).
    pub after_id: Option<u64>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

/// Items matching `filter`, by id.
pub fn list<S: Storage>(engine: &Engine<S>, filter: &ListFilter) -> Vec<ConflictItem> {
    let matching = engine.conflicts().filter(|i| {
        (!filter.open_only || i.status.is_open())
            && filter
                .collection
                .as_ref()
                .is_none_or(|c| i.entity.collection == *c)
            && filter.after_id.is_none_or(|after| i.id > after)
    });
    let limit = if filter.limit == 0 {
        usize::MAX
    } else {
        filter.limit
    };
    matching.take(limit).cloned().collect()
}

/// One item.
pub fn get<S: Storage>(engine: &Engine<S>, id: u64) -> Option<ConflictItem> {
    engine.conflict(id).cloned()
}

/// The number of open items: the queue depth metric.
pub fn depth<S: Storage>(engine: &Engine<S>) -> usize {
    engine.queue_depth()
}

/// Resolves item `id` with `value` (`None` deletes). The resolution
/// replicates; every region closes its own item when it applies it.
pub fn resolve<S: Storage>(
    engine: &mut Engine<S>,
    id: u64,
    value: Option<Vec<u8>>,
) -> Result<Accepted, QueueError> {
    Ok(engine.resolve(id, value)?)
}

/// A cursor over queue changes: each poll returns the items opened, updated
/// or closed since the last one, in the order they changed. Delivery is
/// at-least-once: keep the position durably and restart from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    position: u64,
}

impl Watch {
    /// Watches changes after `position` (0: from the beginning).
    pub fn from(position: u64) -> Self {
        Self { position }
    }

    /// The position of the last change returned.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The items changed since the last poll.
    pub fn poll<S: Storage>(&mut self, engine: &Engine<S>) -> Vec<ConflictItem> {
        let items: Vec<ConflictItem> = engine
            .conflicts_after(self.position)
            .into_iter()
            .cloned()
            .collect();
        if let Some(last) = items.last() {
            self.position = last.position;
        }
        items
    }
}

/// Where a resolver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOn {
    /// Only on this region: the others leave the items to its resolutions.
    Region(RegionId),
    /// On whichever region runs it (only safe when one region does).
    Anywhere,
}

/// A resolver bound to a collection.
pub struct Binding {
    /// The collection whose items it decides.
    pub collection: Collection,
    /// The resolver.
    pub resolver: Box<dyn Resolver + Send + Sync>,
    /// Where it runs.
    pub run_on: RunOn,
}

/// What [`run_resolvers`] did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Items resolved, with the resolution write.
    pub resolved: Vec<(u64, Accepted)>,
    /// Items a resolver left to the application.
    pub skipped: Vec<u64>,
    /// Items a resolver could not decide, with why.
    pub failed: Vec<(u64, QueueError)>,
}

/// Runs every binding that applies to this region over the open items of
/// its collection.
pub fn run_resolvers<S: Storage>(
    engine: &mut Engine<S>,
    bindings: &[Binding],
) -> Result<RunReport, QueueError> {
    let mut report = RunReport::default();
    let here = engine.region();
    for b in bindings {
        if let RunOn::Region(r) = b.run_on
            && r != here
        {
            continue;
        }
        let items = list(
            engine,
            &ListFilter {
                open_only: true,
                collection: Some(b.collection.clone()),
                ..ListFilter::default()
            },
        );
        for item in items {
            match b.resolver.decide(&item) {
                Ok(Decision::Skip) => report.skipped.push(item.id),
                Ok(Decision::Resolve(v)) => report
                    .resolved
                    .push((item.id, engine.resolve(item.id, Some(v))?)),
                Ok(Decision::Delete) => report
                    .resolved
                    .push((item.id, engine.resolve(item.id, None)?)),
                Err(e) => report.failed.push((item.id, e)),
            }
        }
    }
    Ok(report)
}

/// How long closed items and loser records are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Closed conflict items and loser records older than this are purged.
    pub keep_for: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What [`purge`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Closed items removed.
    pub items: usize,
    /// Loser records removed.
    pub losers: usize,
}

/// Purges what `retention` no longer keeps, as of `now`. Open items are never purged.
pub fn purge<S: Storage>(
    engine: &mut Engine<S>,
    retention: &Retention,
    now: concord_clock::WallTime,
) -> Purged {
    let (items, losers) = engine.purge(now.saturating_sub(retention.keep_for));
    Purged { items, losers }
}
