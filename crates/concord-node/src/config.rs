//! The node's TOML configuration.
//!
//! One file per node. It names this node's region, where it listens, where it
//! keeps its data, every region of the deployment (this one included) and the
//! collections with their policies. Everything else has a default. A bad file
//! gets a [`NodeError::Config`] whose `field` is the offending setting's path,
//! e.g. `collections[2].policy` or `regions[1].address`; unknown keys are
//! errors too, so a typo never passes silently.
//!
//! # Format
//!
//! ```
//! # fn main() -> Result<(), concord_node::NodeError> {
//! use concord_node::config::{NodeConfig, TlsSetting, WriteConcern};
//!
//! let text = r#"
//! ## This node.
//! region = "us-east"                 # must be one of [[regions]]
//! listen = "127.0.0.1:7101"          # gRPC: the client and the peer services
//! metrics_listen = "127.0.0.1:9101"  # optional: Prometheus text at GET /metrics
//! data_dir = "./data/us-east"
//!
//! ## Optional, shown with their defaults.
//! max_skew_ms = 5000         # remote wall times further ahead are queued or refused
//! write_concern = "local"    # "local", "all" or "regions:N" (here and N other regions)
//! write_timeout_ms = 5000    # how long a write waits for its write concern
//! read_wait_ms = 5000        # how long a read waits for its causal token
//!
//! [lag]                      # channel status thresholds
//! rpo_ms = 5000              # lag at or above this is critical (rebuilding)
//! warn_factor = 10.0         # lag above this many times the average is lagging
//! warn_floor_ms = 100        # ... unless it is below this
//! failed_after_ms = 10000    # a peer silent this long is failed
//!
//! [tuning]
//! max_batch_writes = 1000    # writes per peer batch message
//! max_in_flight = 8          # unacknowledged batches per peer
//! checkpoint_every = 50000   # applied writes between checkpoints
//! heartbeat_ms = 500         # idle time before a heartbeat to a peer
//! max_key_bytes = 4096
//! max_value_bytes = 1048576
//! max_message_bytes = 4194304  # gRPC decode limit
//!
//! [limits]                   # shown with their defaults
//! max_write_many = 1000      # writes in one WriteMany
//! max_peer_batch = 10000     # writes in one batch from a peer
//! max_siblings = 1024        # ceiling of every collection's max_siblings
//! max_concurrent_per_client = 256
//! max_concurrent_per_peer = 16
//!
//! ## Required: TLS, or an explicit `insecure = true` (plaintext, logged
//! ## at warn on every start). Relative paths are taken from the config
//! ## file's directory. `concord certs` makes a CA and region certificates.
//! [tls]
//! ca = "certs/ca.pem"          # signs every region's certificate
//! cert = "certs/us-east.pem"   # names this region: us-east.region.concord
//! key = "certs/us-east.key"
//!
//! ## The clients and their tokens (sha256 hex: `concord token hash`).
//! ## Required with TLS; with `insecure = true` and none, access is open.
//! [[clients]]
//! name = "app"
//! token_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
//! read = ["profiles", "carts"]    # "*": every collection
//! write = ["profiles"]
//!
//! [[clients]]
//! name = "ops"
//! token_sha256 = "32323cfa9ec9d62750daad0836a4cf3d7b60d23723b7852a529667deed01669f"
//! read = ["*"]
//! write = ["*"]
//! admin = true                # Takeover, Handoff, ResolveConflict
//!
//! ## Every region, this one included. Ids are 1..=65535, unique, and the
//! ## same on every node; `address` is required for every region but this one.
//! [[regions]]
//! name = "us-east"
//! id = 1
//!
//! [[regions]]
//! name = "eu-west"
//! id = 2
//! address = "http://127.0.0.1:7102"
//!
//! [[regions]]
//! name = "ap-south"
//! id = 3
//! address = "http://127.0.0.1:7103"
//!
//! ## policy: "lww-wall", "lww-hlc", "mv", "counter" or "queue".
//! ## replication: "everywhere" (default), "local", or a list of region names
//! ##   (data residency: writes go only to those regions).
//! ## max_siblings (mv, default 16): past this many siblings the entity is queued.
//! ## skew_action: "queue" (default) or "refuse": what to do with a remote
//! ##   write whose wall time is more than max_skew_ms ahead.
//! [[collections]]
//! name = "profiles"
//! policy = "lww-hlc"
//!
//! [[collections]]
//! name = "carts"
//! policy = "mv"
//! max_siblings = 8
//!
//! [[collections]]
//! name = "eu-audit"
//! policy = "lww-wall"
//! replication = ["eu-west"]
//! skew_action = "refuse"
//!
//! ## owned: each key has one home region that accepts its writes. Rules:
//! ##   "modulo" (the key is a decimal id n: regions[n % len] owns it),
//! ##   "hash-ranges" (the key's hash picks a region: even shares, or
//! ##   `bounds`, inclusive upper hash bounds in hex, one per region), or
//! ##   "table" (`entries` key -> region, and an optional `default`).
//! ## forward = true sends a write made at another region on to the owner
//! ## instead of refusing it.
//! [[collections]]
//! name = "accounts"
//! policy = "lww-hlc"
//! owned = { rule = "modulo", regions = ["us-east", "eu-west"], forward = true }
//!
//! ## TESTING ONLY, never in a real deployment: fault injection (see
//! ## `Testing`). clock_offset_ms is added to this node's clock (negative:
//! ## behind), to simulate clock skew between regions. Default 0.
//! ## [testing]
//! ## clock_offset_ms = 0
//! "#;
//!
//! let config = NodeConfig::parse(text)?;
//! assert_eq!(config.region, "us-east");
//! assert_eq!(config.region_id().get(), 1);
//! assert_eq!(config.peers().count(), 2);
//! assert_eq!(config.write_concern, WriteConcern::Local);
//! assert_eq!(config.collections.len(), 4);
//! assert!(config.collections[3].config.owned.as_ref().is_some_and(|o| o.forward));
//! assert!(matches!(config.tls, Some(TlsSetting::Files(_))));
//! assert_eq!(config.clients.len(), 2);
//! // What the engine gets.
//! let engine = config.engine_config();
//! assert_eq!(engine.peers.len(), 2);
//! // The file round-trips.
//! assert_eq!(NodeConfig::parse(&config.to_toml())?, config);
//! # Ok(())
//! # }
//! ```
//!
//! Durations are whole milliseconds: [`NodeConfig::to_toml`] writes a
//! duration built in code with a sub-millisecond part rounded down.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use concord_core::{
    Collection, CollectionConfig, CoreError, EngineConfig, LagThresholds, OwnershipConfig, Policy,
    Replication, SkewAction,
};
use concord_crdt::RegionId;
use concord_ownership::Rule;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::auth::ClientSpec;
use crate::error::NodeError;
use crate::limits::Limits;
use crate::tls::TlsFiles;

/// The longest region name accepted, in bytes.
const MAX_REGION_NAME: usize = 64;
/// The longest duration accepted anywhere in the file (365 days), in ms.
const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;
/// Room a batch message needs besides one key and one value, in bytes.
const MESSAGE_OVERHEAD: usize = 4096;

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// This node's region name (one of `regions`).
    pub region: String,
    /// The gRPC address: the client and the peer services.
    pub listen: SocketAddr,
    /// Where Prometheus text metrics are served over HTTP, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The directory of the node's store.
    pub data_dir: PathBuf,
    /// Every region of the deployment, this one included.
    pub regions: Vec<RegionEntry>,
    /// The collections and their configuration.
    pub collections: Vec<CollectionSpec>,
    /// A remote wall timestamp further ahead of this node's clock is held
    /// (TOML `max_skew_ms`, default 5000).
    pub max_skew: Duration,
    /// The write concern of requests that do not set one (TOML
    /// `write_concern`, default `local`).
    pub write_concern: WriteConcern,
    /// How long a write waits for its write concern by default (TOML
    /// `write_timeout_ms`, default 5000).
    pub write_timeout: Duration,
    /// How long a read waits for its causal token by default (TOML
    /// `read_wait_ms`, default 5000).
    pub read_wait: Duration,
    /// Channel status thresholds (TOML table `[lag]`).
    pub lag: LagThresholds,
    /// Batching, flow control and size limits (TOML table `[tuning]`).
    pub tuning: Tuning,
    /// TLS, or plaintext (TOML table `[tls]`). Required: `None` is refused
    /// by [`NodeConfig::validate`], so plaintext is always a choice.
    pub tls: Option<TlsSetting>,
    /// The clients and their permissions (TOML `[[clients]]`); none: open
    /// access, allowed only with [`TlsSetting::Insecure`].
    pub clients: Vec<ClientSpec>,
    /// Count and concurrency limits (TOML table `[limits]`).
    pub limits: Limits,
}

/// How the node's gRPC port is secured (TOML table `[tls]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TlsSetting {
    /// TLS with these files: peers authenticate each other with their
    /// region certificates (mutual TLS).
    Files(TlsFiles),
    /// Plaintext (`insecure = true`): no TLS, no peer authentication. Only
    /// for local experiments; the node logs a warning on every start.
    Insecure,
}

/// One region of the deployment (TOML `[[regions]]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionEntry {
    /// The region's name: 1 to 64 bytes of `[A-Za-z0-9_.-]`, unique.
    pub name: String,
    /// The region's numeric id: 1..=65535, unique, the same on every node.
    pub id: RegionId,
    /// The region node's gRPC address, e.g. `http://127.0.0.1:7102`.
    /// Required for every region but this node's own.
    pub address: Option<String>,
}

/// One collection (TOML `[[collections]]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CollectionSpec {
    /// The collection's name.
    pub name: Collection,
    /// Its policy, replication and limits.
    pub config: CollectionConfig,
}

/// How durable a write must be before the node answers.
///
/// Written `local`, `all` or `regions:N` (`regions(N)` is accepted too).
///
/// ```
/// use concord_node::config::WriteConcern;
/// assert_eq!("regions:2".parse::<WriteConcern>().ok(), Some(WriteConcern::Regions(2)));
/// assert_eq!(WriteConcern::All.to_string(), "all");
/// assert!("some".parse::<WriteConcern>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WriteConcern {
    /// Durable in this region (the default).
    #[default]
    Local,
    /// Durable here and in this many other regions (at least 1).
    Regions(u32),
    /// Durable in every region the write may go to.
    All,
}

impl fmt::Display for WriteConcern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Regions(n) => write!(f, "regions:{n}"),
            Self::All => f.write_str("all"),
        }
    }
}

impl FromStr for WriteConcern {
    type Err = NodeError;

    /// Parses `local`, `all`, `regions:N` or `regions(N)` with N at least 1.
    /// The error's field is `write_concern`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| config_error("write_concern", reason);
        let s = s.trim();
        match s {
            "local" => return Ok(Self::Local),
            "all" => return Ok(Self::All),
            _ => {}
        }
        let count = s
            .strip_prefix("regions:")
            .or_else(|| {
                s.strip_prefix("regions(")
                    .and_then(|rest| rest.strip_suffix(')'))
            })
            .ok_or_else(|| {
                bad(format!(
                    "{s:?} is not a write concern: expected \"local\", \"all\" or \"regions:N\""
                ))
            })?;
        match count.trim().parse::<u32>() {
            Ok(0) => Err(bad(
                "regions:0 asks for no other region; write \"local\"".to_owned()
            )),
            Ok(n) => Ok(Self::Regions(n)),
            Err(_) => Err(bad(format!(
                "{count:?} is not a number of regions (expected regions:N, N at least 1)"
            ))),
        }
    }
}

/// Batching, flow control and size limits (TOML `[tuning]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Most writes in one batch message to a peer (default 1000).
    pub max_batch_writes: usize,
    /// Most unacknowledged batches in flight to one peer (default 8).
    pub max_in_flight: u32,
    /// Checkpoint after this many applied writes (default 50000).
    pub checkpoint_every: u64,
    /// Send a peer a heartbeat after this long without sending it anything
    /// (TOML `heartbeat_ms`, default 500).
    pub heartbeat: Duration,
    /// Largest key accepted, bytes (default 4096).
    pub max_key_bytes: usize,
    /// Largest value accepted, bytes (default 1 MiB).
    pub max_value_bytes: usize,
    /// Largest gRPC message decoded, bytes (default 4 MiB).
    pub max_message_bytes: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_batch_writes: 1000,
            max_in_flight: 8,
            checkpoint_every: 50_000,
            heartbeat: Duration::from_millis(500),
            max_key_bytes: 4096,
            max_value_bytes: 1024 * 1024,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Knobs for fault-injection tests only (TOML table `[testing]`). Never
/// set them in a real deployment. They are not part of [`NodeConfig`] (nor
/// of [`NodeConfig::to_toml`]): [`NodeConfig::load_with_testing`] returns
/// them beside it, and [`crate::node::Node::start_with_testing`] applies them.
///
/// ```
/// # fn main() -> Result<(), concord_node::NodeError> {
/// use concord_node::config::NodeConfig;
/// let text = r#"
/// region = "us-east"
/// listen = "127.0.0.1:7101"
/// data_dir = "./data"
/// [tls]
/// insecure = true
/// [[regions]]
/// name = "us-east"
/// id = 1
///
/// ## TESTING ONLY: this node's clock runs 1.5 s ahead of the real one.
/// [testing]
/// clock_offset_ms = 1500
/// "#;
/// let (_, testing) = NodeConfig::parse_with_testing(text)?;
/// assert_eq!(testing.clock_offset_ms, 1500);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Testing {
    /// Added to every reading of the system clock, in ms (negative: behind;
    /// TOML `clock_offset_ms`, default 0, at most 365 days either way).
    /// Simulates a skewed clock, for soak and skew tests.
    pub clock_offset_ms: i64,
}

/// The map between region names and ids.
///
/// Cheap to clone (shared). Build it with [`NodeConfig::region_names`] or
/// collect it from `(RegionId, String)` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionNames(Arc<[(RegionId, String)]>);

impl RegionNames {
    /// The name of region `id`, or `region-<n>` for an id not in the map.
    pub fn name(&self, id: RegionId) -> String {
        self.0
            .iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| format!("region-{}", id.get()), |(_, n)| n.clone())
    }

    /// The id of the region called `name`, if there is one.
    pub fn id(&self, name: &str) -> Option<RegionId> {
        self.0.iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }

    /// Every region, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = (RegionId, &str)> {
        self.0.iter().map(|(i, n)| (*i, n.as_str()))
    }
}

impl FromIterator<(RegionId, String)> for RegionNames {
    /// Builds the map; for a repeated id the first name is kept.
    fn from_iter<T: IntoIterator<Item = (RegionId, String)>>(iter: T) -> Self {
        let mut entries: Vec<(RegionId, String)> = Vec::new();
        for (id, name) in iter {
            if !entries.iter().any(|(i, _)| *i == id) {
                entries.push((id, name));
            }
        }
        entries.sort_by_key(|(i, _)| *i);
        Self(entries.into())
    }
}

impl NodeConfig {
    /// Parses and validates a configuration from TOML text. A `[testing]`
    /// table is checked and ignored: see [`NodeConfig::parse_with_testing`].
    pub fn parse(text: &str) -> Result<Self, NodeError> {
        Self::parse_with_testing(text).map(|(config, _)| config)
    }

    /// [`NodeConfig::parse`], with the file's testing knobs (TOML table
    /// `[testing]`; all off without one).
    pub fn parse_with_testing(text: &str) -> Result<(Self, Testing), NodeError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let testing = raw
            .testing
            .take()
            .map(RawTesting::into_testing)
            .transpose()?
            .unwrap_or_default();
        let config = raw.into_config()?;
        config.validate()?;
        Ok((config, testing))
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        Self::load_with_testing(path).map(|(config, _)| config)
    }

    /// [`NodeConfig::load`], with the file's testing knobs (TOML table
    /// `[testing]`; all off without one). `concord node` starts this way.
    pub fn load_with_testing(path: &Path) -> Result<(Self, Testing), NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut config, testing) = Self::parse_with_testing(&text)?;
        if let (Some(TlsSetting::Files(files)), Some(dir)) = (&mut config.tls, path.parent()) {
            for p in [&mut files.ca, &mut files.cert, &mut files.key] {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok((config, testing))
    }

    /// The configuration as TOML text that [`NodeConfig::parse`] reads back
    /// to an equal configuration (for a valid configuration whose durations
    /// are whole milliseconds and whose data dir is valid UTF-8).
    pub fn to_toml(&self) -> String {
        let raw = RawConfig::from_config(self);
        toml::to_string(&raw)
            .unwrap_or_else(|e| format!("# this configuration cannot be written as TOML: {e}\n"))
    }

    /// This node's region id (`RegionId::default()` if `region` is not one
    /// of `regions`, which [`NodeConfig::validate`] refuses).
    pub fn region_id(&self) -> RegionId {
        self.regions
            .iter()
            .find(|r| r.name == self.region)
            .map(|r| r.id)
            .unwrap_or_default()
    }

    /// The name-id map of every region.
    pub fn region_names(&self) -> RegionNames {
        self.regions
            .iter()
            .map(|r| (r.id, r.name.clone()))
            .collect()
    }

    /// Every region but this node's own, in file order.
    pub fn peers(&self) -> impl Iterator<Item = &RegionEntry> {
        self.regions.iter().filter(move |r| r.name != self.region)
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let collections = self
            .collections
            .iter()
            .map(|c| (c.name.clone(), c.config.clone()))
            .collect();
        let peers = self.peers().map(|r| r.id).collect();
        let mut engine = EngineConfig::new(self.region_id(), peers, collections);
        engine.max_skew = self.max_skew;
        engine.lag = self.lag;
        engine.max_batch_writes = self.tuning.max_batch_writes;
        engine.max_in_flight = self.tuning.max_in_flight;
        engine.checkpoint_every = self.tuning.checkpoint_every;
        engine.heartbeat_every = self.tuning.heartbeat;
        engine.max_key_bytes = self.tuning.max_key_bytes;
        engine.max_value_bytes = self.tuning.max_value_bytes;
        engine
    }

    /// Checks everything [`NodeConfig::parse`] checks besides the TOML
    /// syntax: for configurations built in code. The error names the first
    /// offending field as its TOML path.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.validate_regions()?;
        self.validate_node()?;
        self.validate_collections()?;
        validate_lag(&self.lag, self.tuning.heartbeat)?;
        validate_tuning(&self.tuning)?;
        self.validate_security()
    }

    fn validate_security(&self) -> Result<(), NodeError> {
        match &self.tls {
            None => {
                return Err(config_error(
                    "tls",
                    "missing: give [tls] ca, cert and key (`concord certs` makes them), or insecure = true for plaintext",
                ));
            }
            Some(TlsSetting::Files(f)) => {
                for (field, p) in [
                    ("tls.ca", &f.ca),
                    ("tls.cert", &f.cert),
                    ("tls.key", &f.key),
                ] {
                    if p.as_os_str().is_empty() {
                        return Err(config_error(field, "empty path"));
                    }
                }
                if self.clients.is_empty() {
                    return Err(config_error(
                        "clients",
                        "no [[clients]]: with TLS on, every client needs a token (list them with token_sha256), or set tls.insecure = true for open access",
                    ));
                }
            }
            Some(TlsSetting::Insecure) => {}
        }
        for (i, c) in self.clients.iter().enumerate() {
            let field = |name: &str| format!("clients[{i}].{name}");
            if c.name.is_empty() {
                return Err(config_error(field("name"), "empty"));
            }
            if let Some(j) = self.clients[..i].iter().position(|o| o.name == c.name) {
                return Err(config_error(
                    field("name"),
                    format!("duplicate client {:?} (also clients[{j}])", c.name),
                ));
            }
            crate::auth::check_hash(&c.token_sha256)
                .map_err(|e| config_error(field("token_sha256"), e))?;
            if let Some(j) = self.clients[..i]
                .iter()
                .position(|o| o.token_sha256.eq_ignore_ascii_case(&c.token_sha256))
            {
                return Err(config_error(
                    field("token_sha256"),
                    format!("the same token as clients[{j}]: give each client its own"),
                ));
            }
            for (list, names) in [("read", &c.read), ("write", &c.write)] {
                for (k, name) in names.iter().enumerate() {
                    if name != "*" && !self.collections.iter().any(|s| s.name.as_str() == name) {
                        return Err(config_error(
                            format!("clients[{i}].{list}[{k}]"),
                            format!("{name:?} is not a collection of this node (\"*\": every one)"),
                        ));
                    }
                }
            }
        }
        let l = &self.limits;
        check_range("limits.max_write_many", l.max_write_many, 1, 1_000_000)?;
        check_range("limits.max_peer_batch", l.max_peer_batch, 1, 10_000_000)?;
        if l.max_peer_batch < self.tuning.max_batch_writes {
            return Err(config_error(
                "limits.max_peer_batch",
                format!(
                    "{} is less than tuning.max_batch_writes ({}): peers send batches that large",
                    l.max_peer_batch, self.tuning.max_batch_writes
                ),
            ));
        }
        check_range(
            "limits.max_siblings",
            usize::try_from(l.max_siblings).unwrap_or(usize::MAX),
            1,
            1 << 20,
        )?;
        check_range(
            "limits.max_concurrent_per_client",
            l.max_concurrent_per_client,
            1,
            1 << 20,
        )?;
        check_range(
            "limits.max_concurrent_per_peer",
            l.max_concurrent_per_peer,
            1,
            1 << 16,
        )?;
        for (i, c) in self.collections.iter().enumerate() {
            if c.config.max_siblings > l.max_siblings {
                return Err(config_error(
                    format!("collections[{i}].max_siblings"),
                    format!(
                        "{} is more than limits.max_siblings ({})",
                        c.config.max_siblings, l.max_siblings
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_regions(&self) -> Result<(), NodeError> {
        validate_regions(&self.region, &self.regions)
    }

    fn validate_node(&self) -> Result<(), NodeError> {
        if let Some(metrics) = self.metrics_listen
            && metrics.port() != 0
            && metrics == self.listen
        {
            return Err(config_error(
                "metrics_listen",
                format!("{metrics} is also the gRPC address (listen)"),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(config_error("data_dir", "empty"));
        }
        let others = self.regions.len().saturating_sub(1);
        match self.write_concern {
            WriteConcern::Regions(0) => {
                return Err(config_error(
                    "write_concern",
                    "regions:0 asks for no other region; write \"local\"",
                ));
            }
            WriteConcern::Regions(n) if usize::try_from(n).map_or(true, |n| n > others) => {
                return Err(config_error(
                    "write_concern",
                    format!("regions:{n} asks for more other regions than there are ({others})"),
                ));
            }
            _ => {}
        }
        check_duration("max_skew_ms", self.max_skew, false)?;
        check_duration("write_timeout_ms", self.write_timeout, true)?;
        check_duration("read_wait_ms", self.read_wait, false)
    }

    fn validate_collections(&self) -> Result<(), NodeError> {
        for (i, c) in self.collections.iter().enumerate() {
            if let Some(j) = self.collections[..i].iter().position(|o| o.name == c.name) {
                return Err(config_error(
                    format!("collections[{i}].name"),
                    format!(
                        "duplicate collection {:?} (also collections[{j}])",
                        c.name.as_str()
                    ),
                ));
            }
            if c.config.max_siblings == 0 {
                return Err(config_error(
                    format!("collections[{i}].max_siblings"),
                    "must be at least 1",
                ));
            }
            if let Replication::Regions(ids) = &c.config.replication {
                let field = format!("collections[{i}].replication");
                if ids.is_empty() {
                    return Err(config_error(
                        field,
                        "an empty list of regions: write \"local\" to keep writes in the region that accepts them",
                    ));
                }
                for (k, id) in ids.iter().enumerate() {
                    if !self.regions.iter().any(|r| r.id == *id) {
                        return Err(config_error(
                            format!("{field}[{k}]"),
                            format!("region id {} is not one of the [[regions]]", id.get()),
                        ));
                    }
                    if ids[..k].contains(id) {
                        return Err(config_error(
                            format!("{field}[{k}]"),
                            format!("{:?} is listed twice", self.region_names().name(*id)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The regions: names, ids, addresses, and this node's region among them.
fn validate_regions(region: &str, regions: &[RegionEntry]) -> Result<(), NodeError> {
    if regions.is_empty() {
        return Err(config_error(
            "regions",
            "no regions: list every region, this one included, as [[regions]]",
        ));
    }
    if !regions.iter().any(|r| r.name == region) {
        return Err(config_error(
            "region",
            format!(
                "{:?} is not one of the [[regions]] ({})",
                region,
                region_list(regions)
            ),
        ));
    }
    for (i, r) in regions.iter().enumerate() {
        check_region_name(&r.name).map_err(|e| config_error(format!("regions[{i}].name"), e))?;
        if let Some(j) = regions[..i].iter().position(|o| o.name == r.name) {
            return Err(config_error(
                format!("regions[{i}].name"),
                format!("duplicate region name {:?} (also regions[{j}])", r.name),
            ));
        }
        if r.id.get() == 0 {
            return Err(config_error(
                format!("regions[{i}].id"),
                "region ids are 1..=65535",
            ));
        }
        if let Some(j) = regions[..i].iter().position(|o| o.id == r.id) {
            return Err(config_error(
                format!("regions[{i}].id"),
                format!(
                    "duplicate region id {} (also regions[{j}], {:?})",
                    r.id.get(),
                    regions[j].name
                ),
            ));
        }
        match &r.address {
            Some(address) => check_address(address)
                .map_err(|e| config_error(format!("regions[{i}].address"), e))?,
            None if r.name != region => {
                return Err(config_error(
                    format!("regions[{i}].address"),
                    format!(
                        "missing: the address of {:?} is required (e.g. \"http://host:port\")",
                        r.name
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn region_list(regions: &[RegionEntry]) -> String {
    regions
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate_lag(lag: &LagThresholds, heartbeat: Duration) -> Result<(), NodeError> {
    check_duration("lag.rpo_ms", lag.rpo, true)?;
    if !lag.warn_factor.is_finite() || lag.warn_factor < 1.0 {
        return Err(config_error(
            "lag.warn_factor",
            format!("{} is not a number at least 1", lag.warn_factor),
        ));
    }
    check_duration("lag.warn_floor_ms", lag.warn_floor, false)?;
    check_duration("lag.failed_after_ms", lag.failed_after, true)?;
    if lag.failed_after <= heartbeat {
        return Err(config_error(
            "lag.failed_after_ms",
            format!(
                "{} ms is not longer than the heartbeat interval (tuning.heartbeat_ms = {}): every peer would look failed",
                lag.failed_after.as_millis(),
                heartbeat.as_millis()
            ),
        ));
    }
    Ok(())
}

fn validate_tuning(t: &Tuning) -> Result<(), NodeError> {
    check_range("tuning.max_batch_writes", t.max_batch_writes, 1, 1_000_000)?;
    check_range(
        "tuning.max_in_flight",
        usize::try_from(t.max_in_flight).unwrap_or(usize::MAX),
        1,
        4096,
    )?;
    if t.checkpoint_every == 0 || t.checkpoint_every > i64::MAX as u64 {
        return Err(config_error(
            "tuning.checkpoint_every",
            format!("{} is not in 1..={}", t.checkpoint_every, i64::MAX),
        ));
    }
    check_duration("tuning.heartbeat_ms", t.heartbeat, true)?;
    check_range("tuning.max_key_bytes", t.max_key_bytes, 1, 1 << 20)?;
    check_range("tuning.max_value_bytes", t.max_value_bytes, 1, 256 << 20)?;
    check_range(
        "tuning.max_message_bytes",
        t.max_message_bytes,
        1024,
        1 << 30,
    )?;
    let one_write = t.max_key_bytes + t.max_value_bytes + MESSAGE_OVERHEAD;
    if t.max_message_bytes < one_write {
        return Err(config_error(
            "tuning.max_message_bytes",
            format!(
                "{} bytes cannot carry one write of the largest key and value ({} + {} bytes, plus {MESSAGE_OVERHEAD} of framing)",
                t.max_message_bytes, t.max_key_bytes, t.max_value_bytes
            ),
        ));
    }
    Ok(())
}

fn check_range(field: &str, value: usize, min: usize, max: usize) -> Result<(), NodeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(config_error(
            field,
            format!("{value} is not in {min}..={max}"),
        ))
    }
}

/// Durations are written in whole ms, at most [`MAX_DURATION_MS`].
fn check_duration(field: &str, value: Duration, nonzero: bool) -> Result<(), NodeError> {
    let ms = value.as_millis();
    if ms > u128::from(MAX_DURATION_MS) {
        return Err(config_error(
            field,
            format!("{ms} ms is longer than the limit of {MAX_DURATION_MS} ms (365 days)"),
        ));
    }
    if nonzero && ms == 0 {
        return Err(config_error(field, "must be at least 1 ms"));
    }
    Ok(())
}

fn check_region_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".to_owned());
    }
    if name.len() > MAX_REGION_NAME {
        return Err(format!("longer than {MAX_REGION_NAME} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "{name:?}: only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"
        ));
    }
    Ok(())
}

fn check_address(address: &str) -> Result<(), String> {
    let uri: tonic::codegen::http::Uri = address
        .parse()
        .map_err(|e| format!("{address:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "{address:?} must start with http:// or https:// (e.g. \"http://10.0.0.2:7102\")"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{address:?} has no host"));
    }
    if let Some(authority) = uri.authority()
        && let Some((_, port)) = authority.as_str().rsplit_once(':')
        && !port.contains(']')
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("{address:?} has a bad port {port:?}"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{address:?} must be just scheme://host:port"));
    }
    Ok(())
}

fn config_error(field: impl Into<String>, reason: impl Into<String>) -> NodeError {
    NodeError::Config {
        field: field.into(),
        reason: reason.into(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn duration_field(field: &str, ms: u64) -> Result<Duration, NodeError> {
    if ms > MAX_DURATION_MS {
        return Err(config_error(
            field,
            format!("{ms} ms is longer than the limit of {MAX_DURATION_MS} ms (365 days)"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

// ---------------------------------------------------------------------------
// The file as written: serde structs, converted and validated above.

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: String,
    listen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<String>,
    data_dir: String,
    #[serde(default = "default_max_skew_ms")]
    max_skew_ms: u64,
    #[serde(default = "default_write_concern")]
    write_concern: String,
    #[serde(default = "default_wait_ms")]
    write_timeout_ms: u64,
    #[serde(default = "default_wait_ms")]
    read_wait_ms: u64,
    #[serde(default)]
    lag: RawLag,
    #[serde(default)]
    tuning: RawTuning,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<RawTls>,
    regions: Vec<RawRegion>,
    #[serde(default)]
    collections: Vec<RawCollection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    clients: Vec<RawClient>,
    /// Not part of [`NodeConfig`]: read by [`NodeConfig::parse_with_testing`].
    #[serde(default, skip_serializing)]
    testing: Option<RawTesting>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTesting {
    clock_offset_ms: i64,
}

impl RawTesting {
    fn into_testing(self) -> Result<Testing, NodeError> {
        let limit = i64::try_from(MAX_DURATION_MS).unwrap_or(i64::MAX);
        if !(-limit..=limit).contains(&self.clock_offset_ms) {
            return Err(config_error(
                "testing.clock_offset_ms",
                format!(
                    "{} ms is further than {MAX_DURATION_MS} ms (365 days) from the real clock",
                    self.clock_offset_ms
                ),
            ));
        }
        Ok(Testing {
            clock_offset_ms: self.clock_offset_ms,
        })
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    insecure: bool,
}

impl RawTls {
    fn into_setting(self) -> Result<TlsSetting, NodeError> {
        let any = self.ca.is_some() || self.cert.is_some() || self.key.is_some();
        if self.insecure {
            if any {
                return Err(config_error(
                    "tls.insecure",
                    "insecure = true with certificate files: choose TLS (ca, cert, key) or plaintext",
                ));
            }
            return Ok(TlsSetting::Insecure);
        }
        let need = |field: &str, v: Option<String>| {
            v.map(PathBuf::from).ok_or_else(|| {
                config_error(
                    field,
                    "missing: [tls] needs ca, cert and key (or insecure = true for plaintext)",
                )
            })
        };
        Ok(TlsSetting::Files(TlsFiles {
            ca: need("tls.ca", self.ca)?,
            cert: need("tls.cert", self.cert)?,
            key: need("tls.key", self.key)?,
        }))
    }

    fn from_setting(t: &TlsSetting) -> Self {
        match t {
            TlsSetting::Insecure => Self {
                ca: None,
                cert: None,
                key: None,
                insecure: true,
            },
            TlsSetting::Files(f) => Self {
                ca: Some(f.ca.to_string_lossy().into_owned()),
                cert: Some(f.cert.to_string_lossy().into_owned()),
                key: Some(f.key.to_string_lossy().into_owned()),
                insecure: false,
            },
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    token_sha256: String,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_write_many: u64,
    max_peer_batch: u64,
    max_siblings: u32,
    max_concurrent_per_client: u64,
    max_concurrent_per_peer: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self::from(&Limits::default())
    }
}

impl From<&Limits> for RawLimits {
    fn from(l: &Limits) -> Self {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Self {
            max_write_many: wide(l.max_write_many),
            max_peer_batch: wide(l.max_peer_batch),
            max_siblings: l.max_siblings,
            max_concurrent_per_client: wide(l.max_concurrent_per_client),
            max_concurrent_per_peer: wide(l.max_concurrent_per_peer),
        }
    }
}

impl RawLimits {
    fn into_limits(self) -> Result<Limits, NodeError> {
        let size = |field: &str, n: u64| {
            usize::try_from(n).map_err(|_| config_error(field, format!("{n} is too large")))
        };
        Ok(Limits {
            max_write_many: size("limits.max_write_many", self.max_write_many)?,
            max_peer_batch: size("limits.max_peer_batch", self.max_peer_batch)?,
            max_siblings: self.max_siblings,
            max_concurrent_per_client: size(
                "limits.max_concurrent_per_client",
                self.max_concurrent_per_client,
            )?,
            max_concurrent_per_peer: size(
                "limits.max_concurrent_per_peer",
                self.max_concurrent_per_peer,
            )?,
        })
    }
}

fn default_max_skew_ms() -> u64 {
    5000
}

fn default_wait_ms() -> u64 {
    5000
}

fn default_write_concern() -> String {
    "local".to_owned()
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawLag {
    rpo_ms: u64,
    warn_factor: f64,
    warn_floor_ms: u64,
    failed_after_ms: u64,
}

impl Default for RawLag {
    fn default() -> Self {
        Self::from(&LagThresholds::default())
    }
}

impl From<&LagThresholds> for RawLag {
    fn from(lag: &LagThresholds) -> Self {
        Self {
            rpo_ms: millis(lag.rpo),
            warn_factor: lag.warn_factor,
            warn_floor_ms: millis(lag.warn_floor),
            failed_after_ms: millis(lag.failed_after),
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawTuning {
    max_batch_writes: u64,
    max_in_flight: u32,
    checkpoint_every: u64,
    heartbeat_ms: u64,
    max_key_bytes: u64,
    max_value_bytes: u64,
    max_message_bytes: u64,
}

impl Default for RawTuning {
    fn default() -> Self {
        Self::from(&Tuning::default())
    }
}

impl From<&Tuning> for RawTuning {
    fn from(t: &Tuning) -> Self {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Self {
            max_batch_writes: wide(t.max_batch_writes),
            max_in_flight: t.max_in_flight,
            checkpoint_every: t.checkpoint_every,
            heartbeat_ms: millis(t.heartbeat),
            max_key_bytes: wide(t.max_key_bytes),
            max_value_bytes: wide(t.max_value_bytes),
            max_message_bytes: wide(t.max_message_bytes),
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    name: String,
    policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replication: Option<toml::Value>,
    #[serde(default = "default_max_siblings")]
    max_siblings: u32,
    #[serde(default = "default_skew_action")]
    skew_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owned: Option<RawOwned>,
}

/// `owned = { rule = "modulo" | "hash-ranges" | "table", ... }`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawOwned {
    rule: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    regions: Vec<String>,
    /// hash-ranges: inclusive upper bounds (hex), one per region; none: even shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bounds: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    entries: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default)]
    forward: bool,
}

impl RawOwned {
    fn from_config(o: &OwnershipConfig, names: &RegionNames) -> Self {
        let mut raw = Self {
            rule: String::new(),
            regions: Vec::new(),
            bounds: Vec::new(),
            entries: BTreeMap::new(),
            default: None,
            forward: o.forward,
        };
        match &o.rule {
            Rule::Modulo { regions } => {
                raw.rule = "modulo".into();
                raw.regions = regions.iter().map(|r| names.name(*r)).collect();
            }
            Rule::HashRanges { ranges } => {
                raw.rule = "hash-ranges".into();
                raw.regions = ranges.iter().map(|(_, r)| names.name(*r)).collect();
                raw.bounds = ranges.iter().map(|(b, _)| format!("{b:#018x}")).collect();
            }
            Rule::Table { entries, default } => {
                raw.rule = "table".into();
                raw.entries = entries
                    .iter()
                    .map(|(k, r)| (String::from_utf8_lossy(k).into_owned(), names.name(*r)))
                    .collect();
                raw.default = default.map(|r| names.name(r));
            }
        }
        raw
    }

    fn into_config(
        self,
        at: &str,
        ids: &HashMap<&str, RegionId>,
    ) -> Result<OwnershipConfig, NodeError> {
        let region = |field: String, name: &str| {
            ids.get(name)
                .copied()
                .ok_or_else(|| config_error(field, format!("unknown region {name:?}")))
        };
        let regions = |raw: &[String]| -> Result<Vec<RegionId>, NodeError> {
            raw.iter()
                .enumerate()
                .map(|(k, n)| region(format!("{at}.regions[{k}]"), n))
                .collect()
        };
        let invalid = |e: concord_ownership::OwnershipError| {
            config_error(format!("{at}.rule"), e.to_string())
        };
        let rule = match self.rule.as_str() {
            "modulo" => Rule::modulo(regions(&self.regions)?).map_err(invalid)?,
            "hash-ranges" => {
                let list = regions(&self.regions)?;
                if list.is_empty() {
                    return Err(config_error(
                        format!("{at}.regions"),
                        "hash-ranges needs at least one region",
                    ));
                }
                let bounds: Vec<u64> = if self.bounds.is_empty() {
                    let n = list.len() as u64;
                    let share = u64::MAX / n;
                    (1..=n)
                        .map(|k| if k == n { u64::MAX } else { share * k })
                        .collect()
                } else {
                    if self.bounds.len() != list.len() {
                        return Err(config_error(
                            format!("{at}.bounds"),
                            format!(
                                "{} bounds for {} regions: give one per region",
                                self.bounds.len(),
                                list.len()
                            ),
                        ));
                    }
                    self.bounds
                        .iter()
                        .enumerate()
                        .map(|(k, b)| {
                            u64::from_str_radix(b.trim_start_matches("0x"), 16).map_err(|_| {
                                config_error(
                                    format!("{at}.bounds[{k}]"),
                                    format!("{b:?} is not a hex u64"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?
                };
                Rule::hash_ranges(bounds.into_iter().zip(list).collect()).map_err(invalid)?
            }
            "table" => {
                let mut entries = BTreeMap::new();
                for (k, r) in &self.entries {
                    entries.insert(
                        k.as_bytes().to_vec(),
                        region(format!("{at}.entries.{k}"), r)?,
                    );
                }
                let default = self
                    .default
                    .as_deref()
                    .map(|d| region(format!("{at}.default"), d))
                    .transpose()?;
                Rule::table(entries, default)
            }
            other => {
                return Err(config_error(
                    format!("{at}.rule"),
                    format!("{other:?}: expected \"modulo\", \"hash-ranges\" or \"table\""),
                ));
            }
        };
        let mut owned = OwnershipConfig::new(rule);
        owned.forward = self.forward;
        Ok(owned)
    }
}

fn default_max_siblings() -> u32 {
    16
}

fn default_skew_action() -> String {
    "queue".to_owned()
}

impl RawConfig {
    fn into_config(self) -> Result<NodeConfig, NodeError> {
        let listen = parse_addr("listen", &self.listen)?;
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .map(|a| parse_addr("metrics_listen", a))
            .transpose()?;
        let write_concern: WriteConcern = self.write_concern.parse()?;
        let regions = self
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let id = u16::try_from(r.id)
                    .ok()
                    .filter(|id| *id != 0)
                    .ok_or_else(|| {
                        config_error(
                            format!("regions[{i}].id"),
                            format!("{} is not a region id (1..=65535)", r.id),
                        )
                    })?;
                Ok(RegionEntry {
                    name: r.name.clone(),
                    id: RegionId::new(id),
                    address: r.address.clone(),
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        // Before the collections name regions in residency lists.
        validate_regions(&self.region, &regions)?;
        let ids: HashMap<&str, RegionId> = regions
            .iter()
            .rev() // the first of duplicate names wins (validate refuses them anyway)
            .map(|r| (r.name.as_str(), r.id))
            .collect();
        let collections = self
            .collections
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_spec(i, &ids))
            .collect::<Result<Vec<_>, NodeError>>()?;
        let tuning = self.tuning.into_tuning()?;
        let limits = self.limits.into_limits()?;
        let tls = self.tls.map(RawTls::into_setting).transpose()?;
        let clients = self
            .clients
            .into_iter()
            .map(|c| ClientSpec {
                name: c.name,
                token_sha256: c.token_sha256,
                read: c.read,
                write: c.write,
                admin: c.admin,
            })
            .collect();
        Ok(NodeConfig {
            region: self.region,
            listen,
            metrics_listen,
            data_dir: PathBuf::from(self.data_dir),
            regions,
            collections,
            max_skew: duration_field("max_skew_ms", self.max_skew_ms)?,
            write_concern,
            write_timeout: duration_field("write_timeout_ms", self.write_timeout_ms)?,
            read_wait: duration_field("read_wait_ms", self.read_wait_ms)?,
            lag: LagThresholds {
                rpo: duration_field("lag.rpo_ms", self.lag.rpo_ms)?,
                warn_factor: self.lag.warn_factor,
                warn_floor: duration_field("lag.warn_floor_ms", self.lag.warn_floor_ms)?,
                failed_after: duration_field("lag.failed_after_ms", self.lag.failed_after_ms)?,
            },
            tuning,
            tls,
            clients,
            limits,
        })
    }

    fn from_config(c: &NodeConfig) -> Self {
        let names = c.region_names();
        Self {
            region: c.region.clone(),
            listen: c.listen.to_string(),
            metrics_listen: c.metrics_listen.map(|a| a.to_string()),
            data_dir: c.data_dir.to_string_lossy().into_owned(),
            max_skew_ms: millis(c.max_skew),
            write_concern: c.write_concern.to_string(),
            write_timeout_ms: millis(c.write_timeout),
            read_wait_ms: millis(c.read_wait),
            lag: RawLag::from(&c.lag),
            tuning: RawTuning::from(&c.tuning),
            limits: RawLimits::from(&c.limits),
            tls: c.tls.as_ref().map(RawTls::from_setting),
            testing: None,
            clients: c
                .clients
                .iter()
                .map(|c| RawClient {
                    name: c.name.clone(),
                    token_sha256: c.token_sha256.clone(),
                    read: c.read.clone(),
                    write: c.write.clone(),
                    admin: c.admin,
                })
                .collect(),
            regions: c
                .regions
                .iter()
                .map(|r| RawRegion {
                    name: r.name.clone(),
                    id: i64::from(r.id.get()),
                    address: r.address.clone(),
                })
                .collect(),
            collections: c
                .collections
                .iter()
                .map(|s| RawCollection {
                    name: s.name.to_string(),
                    policy: s.config.policy.name().to_owned(),
                    replication: Some(match &s.config.replication {
                        Replication::Everywhere => toml::Value::from("everywhere"),
                        Replication::LocalOnly => toml::Value::from("local"),
                        Replication::Regions(ids) => toml::Value::Array(
                            ids.iter()
                                .map(|id| toml::Value::from(names.name(*id)))
                                .collect(),
                        ),
                    }),
                    max_siblings: s.config.max_siblings,
                    skew_action: match s.config.skew_action {
                        SkewAction::Queue => "queue",
                        SkewAction::Refuse => "refuse",
                    }
                    .to_owned(),
                    owned: s
                        .config
                        .owned
                        .as_ref()
                        .map(|o| RawOwned::from_config(o, &names)),
                })
                .collect(),
        }
    }
}

impl RawTuning {
    fn into_tuning(self) -> Result<Tuning, NodeError> {
        let size = |field: &str, n: u64| {
            usize::try_from(n).map_err(|_| config_error(field, format!("{n} is too large")))
        };
        Ok(Tuning {
            max_batch_writes: size("tuning.max_batch_writes", self.max_batch_writes)?,
            max_in_flight: self.max_in_flight,
            checkpoint_every: self.checkpoint_every,
            heartbeat: duration_field("tuning.heartbeat_ms", self.heartbeat_ms)?,
            max_key_bytes: size("tuning.max_key_bytes", self.max_key_bytes)?,
            max_value_bytes: size("tuning.max_value_bytes", self.max_value_bytes)?,
            max_message_bytes: size("tuning.max_message_bytes", self.max_message_bytes)?,
        })
    }
}

impl RawCollection {
    fn into_spec(
        self,
        i: usize,
        ids: &HashMap<&str, RegionId>,
    ) -> Result<CollectionSpec, NodeError> {
        let field = |name: &str| format!("collections[{i}].{name}");
        let name = Collection::new(&self.name).map_err(|e| {
            let reason = match e {
                CoreError::InvalidCollection { name, reason } => format!("{name:?}: {reason}"),
                other => other.to_string(),
            };
            config_error(field("name"), reason)
        })?;
        let policy: Policy = self
            .policy
            .parse()
            .map_err(|e: concord_core::UnknownPolicy| {
                config_error(field("policy"), e.to_string())
            })?;
        let replication = match &self.replication {
            None => Replication::Everywhere,
            Some(toml::Value::String(s)) => match s.as_str() {
                "everywhere" => Replication::Everywhere,
                "local" => Replication::LocalOnly,
                other => {
                    return Err(config_error(
                        field("replication"),
                        format!(
                            "{other:?}: expected \"everywhere\", \"local\" or a list of region names"
                        ),
                    ));
                }
            },
            Some(toml::Value::Array(list)) => {
                let mut regions = Vec::with_capacity(list.len());
                for (k, item) in list.iter().enumerate() {
                    let at = format!("collections[{i}].replication[{k}]");
                    let toml::Value::String(name) = item else {
                        return Err(config_error(
                            at,
                            format!("expected a region name, found {}", item.type_str()),
                        ));
                    };
                    let id = ids.get(name.as_str()).ok_or_else(|| {
                        let mut known: Vec<&str> = ids.keys().copied().collect();
                        known.sort_unstable();
                        config_error(
                            at.clone(),
                            format!(
                                "unknown region {name:?} (the [[regions]] are: {})",
                                known.join(", ")
                            ),
                        )
                    })?;
                    regions.push(*id);
                }
                Replication::Regions(regions)
            }
            Some(other) => {
                return Err(config_error(
                    field("replication"),
                    format!(
                        "expected \"everywhere\", \"local\" or a list of region names, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        let skew_action = match self.skew_action.as_str() {
            "queue" => SkewAction::Queue,
            "refuse" => SkewAction::Refuse,
            other => {
                return Err(config_error(
                    field("skew_action"),
                    format!("{other:?}: expected \"queue\" or \"refuse\""),
                ));
            }
        };
        let mut config = CollectionConfig::new(policy).with_replication(replication);
        config.max_siblings = self.max_siblings;
        config.skew_action = skew_action;
        if let Some(owned) = self.owned {
            config.owned = Some(owned.into_config(&field("owned"), ids)?);
        }
        Ok(CollectionSpec { name, config })
    }
}

fn parse_addr(field: &str, text: &str) -> Result<SocketAddr, NodeError> {
    text.parse().map_err(|_| {
        config_error(
            field,
            format!("{text:?} is not a socket address (expected ip:port, e.g. \"127.0.0.1:7101\")"),
        )
    })
}

// ---------------------------------------------------------------------------
// Naming the field of a TOML or serde error from its position in the text.

/// Turns a TOML syntax or serde error into a [`NodeError::Config`] whose
/// field is the path of the key or table at the error's position.
fn toml_error(text: &str, error: &toml::de::Error) -> NodeError {
    let message = error.message().trim().to_owned();
    let Some(span) = error.span() else {
        return config_error("(file)", message);
    };
    let (line, column) = line_column(text, span.start);
    let missing = message.starts_with("missing field `");
    let reason = if missing && span.is_empty() {
        message.clone()
    } else {
        format!("{message} (line {line}, column {column})")
    };
    // The key a serde "unknown field" or "missing field" message names.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    // A syntax error leaves a partial document: still good enough to locate.
    let (document, _) = DeTable::parse_recoverable(text);
    let mut path = if missing && span.is_empty() && span.start == 0 {
        Vec::new() // the top-level table
    } else {
        locate(text, document.get_ref(), &span, missing)
    };
    if let Some(key) = named
        && path.last().is_none_or(|last| *last != key)
    {
        path.push(key);
    }
    let field = join_path(&path);
    if field.is_empty() || field.starts_with('[') {
        config_error(format!("line {line}"), reason)
    } else {
        config_error(field, reason)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// A key of the document, or an item of an array, with where it is.
struct Located {
    path: Vec<String>,
    key: Option<Range<usize>>,
    value: Range<usize>,
    is_table: bool,
}

/// The path of the deepest key or value whose span contains `span` (of a
/// table, for a missing field); failing that, of the last key before
/// `span` on its line (a syntax error in the key's value).
fn locate(
    text: &str,
    document: &DeTable<'_>,
    span: &Range<usize>,
    tables_only: bool,
) -> Vec<String> {
    let mut all = Vec::new();
    collect_table(document, &mut Vec::new(), &mut all);
    let containing = all
        .iter()
        .filter(|l| {
            if tables_only {
                l.is_table && contains(&l.value, span)
            } else {
                contains(&l.value, span) || l.key.as_ref().is_some_and(|k| contains(k, span))
            }
        })
        .max_by_key(|l| l.path.len());
    if let Some(found) = containing {
        return found.path.clone();
    }
    if tables_only {
        return Vec::new();
    }
    let same_line = all
        .iter()
        .filter_map(|l| {
            let key = l.key.as_ref()?;
            let between = text.get(key.end..span.start)?;
            (!between.contains('\n')).then_some((key.start, l))
        })
        .max_by_key(|(start, _)| *start);
    if let Some((_, found)) = same_line {
        return found.path.clone();
    }
    // A key the document does not hold (a duplicate): in the table last
    // opened before it.
    let Some(key) = text.get(span.clone()).filter(|k| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    }) else {
        return Vec::new();
    };
    let mut path = all
        .iter()
        .filter(|l| l.is_table && l.value.start <= span.start)
        .max_by_key(|l| (l.value.start, l.path.len()))
        .map(|l| l.path.clone())
        .unwrap_or_default();
    path.push(key.to_owned());
    path
}

fn collect_table(table: &DeTable<'_>, path: &mut Vec<String>, out: &mut Vec<Located>) {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        collect_value(value, Some(key.span()), path, out);
        path.pop();
    }
}

fn collect_value(
    value: &toml::Spanned<DeValue<'_>>,
    key: Option<Range<usize>>,
    path: &mut Vec<String>,
    out: &mut Vec<Located>,
) {
    out.push(Located {
        path: path.clone(),
        key,
        value: value.span(),
        is_table: matches!(value.get_ref(), DeValue::Table(_)),
    });
    match value.get_ref() {
        DeValue::Table(table) => collect_table(table, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                collect_value(item, None, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn join_path(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if !part.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(part);
    }
    out
}
