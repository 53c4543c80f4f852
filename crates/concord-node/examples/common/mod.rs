//! What the examples share: a cluster of regions in this process, a
//! conflict item as the engine's type (for `concord-queue`'s resolvers), a
//! skewed clock, and small printing and checking helpers.
//!
//! Every client operation in the examples goes through the gRPC client
//! ([`concord_node::client::Client`]); the nodes run in this process only so
//! that each example is one command.

// Each example uses part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{Clock, HlcTime, SystemClock, WallTime};
use concord_core::{
    Collection, CollectionConfig, ConflictItem, ConflictReason, EntityKey, ItemStatus, Version,
    WriteRef,
};
use concord_crdt::RegionId;
use concord_node::client::{Client, Read};
use concord_node::demo::{local_configs, loopback_listeners, wait_connected, wait_converged};
use concord_node::node::Node;
use concord_node::pb;

/// What an example returns: any error ends it with a message and exit code 1.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Fails with `what` unless `holds`: how an example asserts its outcome.
pub(crate) fn check(holds: bool, what: impl FnOnce() -> String) -> Result {
    if holds {
        Ok(())
    } else {
        Err(format!("check failed: {}", what()).into())
    }
}

/// Bytes as text, for printing.
pub(crate) fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// A version's value as text (`(deleted)` for a deletion).
pub(crate) fn value_of(v: &pb::Version) -> String {
    v.value
        .as_deref()
        .map_or_else(|| "(deleted)".to_owned(), text)
}

/// A read, in one line.
pub(crate) fn show(read: &Read) -> String {
    match read {
        Read::Missing => "(missing)".to_owned(),
        Read::Value { value, version } => {
            format!("{:?} (written in {})", text(value), version.origin)
        }
        Read::Siblings { versions, .. } => {
            let mut vs: Vec<String> = versions
                .iter()
                .map(|v| format!("{:?} from {}", value_of(v), v.origin))
                .collect();
            vs.sort();
            format!("{} version(s): {}", vs.len(), vs.join(", "))
        }
        Read::Counter(n) => n.to_string(),
    }
}

/// A clock `ahead` of the system clock: a region whose clock runs fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AheadClock {
    /// How far ahead of the real time it reads.
    pub(crate) ahead: Duration,
}

impl Clock for AheadClock {
    fn now(&self) -> WallTime {
        SystemClock.now().saturating_add(self.ahead)
    }
}

/// A region's setup: its name, and optionally a clock of its own.
pub(crate) struct RegionSetup {
    /// The region's name.
    pub(crate) name: &'static str,
    /// Its clock (`None`: the system clock).
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

impl RegionSetup {
    /// A region on the system clock.
    pub(crate) fn new(name: &'static str) -> Self {
        Self { name, clock: None }
    }

    /// A region whose clock runs `ahead` of the real time.
    pub(crate) fn ahead(name: &'static str, ahead: Duration) -> Self {
        Self {
            name,
            clock: Some(Arc::new(AheadClock { ahead })),
        }
    }
}

/// Regions running in this process on loopback, with a gRPC client each.
pub(crate) struct Cluster {
    /// The regions' names, in order (region ids 1, 2, 3, ...).
    pub(crate) names: Vec<&'static str>,
    /// The nodes; `None` once shut down.
    pub(crate) nodes: Vec<Option<Node>>,
    /// One gRPC client per region.
    pub(crate) clients: Vec<Client>,
    /// The data directories (removed on drop).
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts one node per region on loopback, replicating the demo's
    /// collections (see `concord_node::demo::COLLECTIONS`) and `extra`, and
    /// waits until every replication stream is up.
    pub(crate) async fn start(
        regions: Vec<RegionSetup>,
        extra: &[(&str, CollectionConfig)],
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let names: Vec<&'static str> = regions.iter().map(|r| r.name).collect();
        let listeners = loopback_listeners(names.len()).await?;
        let mut addrs = Vec::with_capacity(listeners.len());
        for l in &listeners {
            addrs.push(l.local_addr()?);
        }
        let mut configs = local_configs(&names, &addrs, dir.path())?;
        for config in &mut configs {
            for (name, collection) in extra {
                config
                    .collections
                    .push(concord_node::config::CollectionSpec {
                        name: Collection::new(name)?,
                        config: collection.clone(),
                    });
            }
        }
        let mut nodes = Vec::with_capacity(names.len());
        for ((config, listener), setup) in configs.into_iter().zip(listeners).zip(regions) {
            let clock = setup.clock.unwrap_or_else(|| Arc::new(SystemClock));
            nodes.push(Some(Node::start_with_clock(config, listener, clock).await?));
        }
        Self::connect(names, nodes, dir).await
    }

    /// Starts the demo's three-region layout with `concord_node::demo::start_local`.
    pub(crate) async fn start_local(names: &[&'static str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let nodes = concord_node::demo::start_local(names, dir.path()).await?;
        Self::connect(names.to_vec(), nodes.into_iter().map(Some).collect(), dir).await
    }

    async fn connect(
        names: Vec<&'static str>,
        nodes: Vec<Option<Node>>,
        dir: tempfile::TempDir,
    ) -> Result<Self> {
        let mut clients = Vec::with_capacity(nodes.len());
        for (name, node) in names.iter().zip(&nodes) {
            let Some(node) = node else { continue };
            println!("  {name:<9} serving gRPC on {}", node.addr());
            clients.push(Client::connect(&format!("http://{}", node.addr())).await?);
        }
        wait_connected(&mut clients, Duration::from_secs(10)).await?;
        println!("  every replication stream is up\n");
        Ok(Self {
            names,
            nodes,
            clients,
            _dir: dir,
        })
    }

    /// The node of region `i` (it must still be running).
    pub(crate) fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("region {} is not running", self.names[i]).into())
    }

    /// A clone of region `i`'s client (clients are cheap to clone).
    pub(crate) fn client(&self, i: usize) -> Client {
        self.clients[i].clone()
    }

    /// Waits until every region reads the same for `keys`, and has applied
    /// the same writes; returns what they read.
    pub(crate) async fn converged(
        &mut self,
        keys: &[(&str, &[u8])],
    ) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(wait_converged(&mut self.clients, keys, Duration::from_secs(20)).await?)
    }

    /// Shuts region `i` down (a flush, then its sockets close).
    pub(crate) async fn stop(&mut self, i: usize) -> Result {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await?;
        }
        Ok(())
    }

    /// Shuts every region down.
    pub(crate) async fn shutdown(mut self) -> Result {
        self.clients.clear();
        for i in 0..self.nodes.len() {
            self.stop(i).await?;
        }
        Ok(())
    }
}

/// A conflict item from the wire as the engine's [`ConflictItem`], so that
/// the resolvers of `concord-queue` (written against the engine's types) can
/// decide it in an application that only talks gRPC.
pub(crate) fn core_item(item: &pb::ConflictItem) -> Result<ConflictItem> {
    let mut versions = Vec::with_capacity(item.versions.len());
    for v in &item.versions {
        let w = v.write.ok_or("a conflict version without its write")?;
        versions.push(Version {
            value: v.value.clone(),
            write: WriteRef {
                origin: RegionId::new(u16::try_from(w.origin)?),
                seq: w.seq,
            },
            hlc: HlcTime::from_u64(v.hlc),
            wall: WallTime::from_micros(v.wall_micros),
        });
    }
    Ok(ConflictItem {
        id: item.id,
        position: item.position,
        entity: EntityKey::new(Collection::new(&item.collection)?, item.key.clone()),
        // The resolvers here only look at the versions.
        reason: ConflictReason::Concurrent,
        versions,
        opened: WallTime::from_micros(item.opened_micros),
        status: ItemStatus::Open,
    })
}

/// Open conflict items in every region, per region.
pub(crate) async fn open_items(clients: &mut [Client]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients.iter_mut() {
        out.push(c.conflicts(false).await?.len());
    }
    Ok(out)
}
