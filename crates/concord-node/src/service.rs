//! The client service: `Put`, `Get`, `Delete`, `Increment`, the conflict
//! queue, the loser log, `Status` and ownership, over the engine thread.
//!
//! Every call is authenticated first ([`crate::auth`]): reads need read
//! permission on the collection, writes write permission, and `Takeover`,
//! `Handoff` and `ResolveConflict` the admin role. Then the limits
//! ([`crate::limits`]): calls in progress per client, keys and values, items
//! of a `WriteMany`. Every refusal is counted and reported by `Status`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_core::{
    ClientOp, ClientWrite, Collection, ConflictItem, ConflictReason, CoreError, ItemStatus,
    LoserRecord, ReadValue, Version, WriteRef,
};
use concord_crdt::RegionId;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{AUTHORIZATION, Auth, Principal};
use crate::config::{RegionNames, WriteConcern};
use crate::driver::{Command, DriverHandle, Durable, Needed, WriteReply};
use crate::limits::{Gate, Limits, Rejections};
use crate::tls::TlsMaterial;
use crate::{NodeError, convert, pb};

/// A [`CoreError`] as the gRPC status a client gets.
pub fn status_of(e: &CoreError) -> Status {
    let msg = e.to_string();
    match e {
        CoreError::InvalidCollection { .. }
        | CoreError::TooLarge { .. }
        | CoreError::WrongOpKind { .. } => Status::invalid_argument(msg),
        CoreError::UnknownCollection(_) | CoreError::UnknownConflict(_) => Status::not_found(msg),
        CoreError::ConflictClosed(_) | CoreError::Merge(_) | CoreError::NotOwner { .. } => {
            Status::failed_precondition(msg)
        }
        CoreError::HandoffInProgress { .. } => Status::unavailable(msg),
        CoreError::UnknownHandoff(_) | CoreError::UnknownRegion(_) => Status::not_found(msg),
        CoreError::InvalidOwnershipChange { .. } | CoreError::Ownership(_) => {
            Status::invalid_argument(msg)
        }
        CoreError::CounterOverflow => Status::out_of_range(msg),
        CoreError::SiblingLimit { .. } => Status::resource_exhausted(msg),
        CoreError::Rebuilding { .. } | CoreError::Clock(_) => Status::unavailable(msg),
        _ => Status::internal(msg),
    }
}

/// A [`NodeError`] as a gRPC status.
pub fn status_of_node(e: &NodeError) -> Status {
    match e {
        NodeError::Core(c) => status_of(c),
        NodeError::Malformed { .. } => Status::invalid_argument(e.to_string()),
        NodeError::Concern { .. } => Status::invalid_argument(e.to_string()),
        NodeError::Stopped => Status::unavailable(e.to_string()),
        NodeError::Item { source, .. } => {
            let inner = status_of_node(source);
            Status::new(inner.code(), e.to_string())
        }
        NodeError::Status(s) => s.clone(),
        _ => Status::internal(e.to_string()),
    }
}

/// The header that marks a write forwarded by another node (never forwarded again).
const FORWARDED: &str = "x-concord-forwarded";

/// Service-wide settings.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// The write concern of requests that name none.
    pub write_concern: WriteConcern,
    /// How long a write waits for its concern by default.
    pub write_timeout: Duration,
    /// How long a read waits for its causal token by default.
    pub read_wait: Duration,
}

/// Who may call the client service, and its limits.
#[derive(Clone)]
pub struct Security {
    /// The configured clients.
    pub auth: Arc<Auth>,
    /// TLS material, to dial owners when forwarding (`None`: plaintext).
    pub tls: Option<Arc<TlsMaterial>>,
    /// The peer regions' names (a write forwarded by one is accepted).
    pub peers: Vec<String>,
    /// Calls in progress per client.
    pub gate: Arc<Gate>,
    /// Refusals, counted.
    pub rejections: Arc<Rejections>,
    /// Count limits.
    pub limits: Limits,
    /// Largest key accepted, bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, bytes.
    pub max_value_bytes: usize,
}

impl Security {
    /// Open access, plaintext, default limits (for a service built in code).
    pub fn open() -> Self {
        let tuning = crate::config::Tuning::default();
        Self {
            auth: Arc::new(Auth::default()),
            tls: None,
            peers: Vec::new(),
            gate: Arc::new(Gate::new(
                Limits::default().max_concurrent_per_client,
                "limits.max_concurrent_per_client",
            )),
            rejections: Arc::new(Rejections::default()),
            limits: Limits::default(),
            max_key_bytes: tuning.max_key_bytes,
            max_value_bytes: tuning.max_value_bytes,
        }
    }
}

/// The client gRPC service.
#[derive(Clone)]
pub struct ClientService {
    driver: DriverHandle,
    region: RegionId,
    names: RegionNames,
    settings: ServiceSettings,
    security: Security,
    /// Client addresses of the other regions (for forwarding to an owner).
    addresses: Arc<HashMap<RegionId, String>>,
    /// Connections to owners, made on first use.
    owners:
        Arc<Mutex<HashMap<RegionId, pb::concord_client::ConcordClient<tonic::transport::Channel>>>>,
}

/// A write to send on to a key's owner.
enum Forward {
    Put(pb::PutRequest),
    Delete(pb::DeleteRequest),
    Increment(pb::IncrementRequest),
}

impl ClientService {
    /// A service over the engine thread `driver`.
    pub fn new(
        driver: DriverHandle,
        region: RegionId,
        names: RegionNames,
        settings: ServiceSettings,
        security: Security,
        addresses: HashMap<RegionId, String>,
    ) -> Self {
        Self {
            driver,
            region,
            names,
            settings,
            security,
            addresses: Arc::new(addresses),
            owners: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A refusal, counted.
    fn reject(&self, status: Status) -> Status {
        self.security.rejections.count(status)
    }

    /// Authenticates a call and takes a slot of its client's concurrency.
    fn admit<T>(&self, request: &Request<T>) -> Result<(Principal, OwnedSemaphorePermit), Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let peer = if forwarded {
            crate::tls::caller_regions(request).and_then(|r| match r.as_slice() {
                [one] if self.security.peers.contains(one) => Some(one.clone()),
                _ => None,
            })
        } else {
            None
        };
        let principal = self
            .security
            .auth
            .authenticate(request.metadata(), peer, forwarded)
            .map_err(|s| self.reject(s))?;
        let permit = self
            .security
            .gate
            .enter(&principal.key())
            .map_err(|s| self.reject(s))?;
        Ok((principal, permit))
    }

    /// Refuses a key or value over the size limits (`at` prefixes the field).
    /// Whether [`Self::check_sizes`] would refuse (without building a message).
    fn sizes_exceeded(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        key.len() > self.security.max_key_bytes
            || value.is_some_and(|v| v.len() > self.security.max_value_bytes)
    }

    fn check_sizes(&self, at: &str, key: &[u8], value: Option<&[u8]>) -> Result<(), Status> {
        if key.len() > self.security.max_key_bytes {
            return Err(self.reject(Status::invalid_argument(format!(
                "{at}key: {} bytes, more than tuning.max_key_bytes ({})",
                key.len(),
                self.security.max_key_bytes
            ))));
        }
        if let Some(v) = value
            && v.len() > self.security.max_value_bytes
        {
            return Err(self.reject(Status::invalid_argument(format!(
                "{at}value: {} bytes, more than tuning.max_value_bytes ({})",
                v.len(),
                self.security.max_value_bytes
            ))));
        }
        Ok(())
    }

    /// A client write after its checks: authenticated, permitted, sizes.
    async fn checked_write(
        &self,
        principal: &Principal,
        forwarded: bool,
        authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        request: Forward,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (collection, key, value) = match &request {
            Forward::Put(r) => (&r.collection, &r.key, Some(r.value.as_slice())),
            Forward::Delete(r) => (&r.collection, &r.key, None),
            Forward::Increment(r) => (&r.collection, &r.key, None),
        };
        principal
            .can_write(collection, forwarded)
            .map_err(|s| self.reject(s))?;
        self.check_sizes("", key, value)?;
        self.write(forwarded, authorization, request).await
    }

    /// A core error as a status, with region names for ids.
    fn status(&self, e: &NodeError) -> Status {
        match e {
            NodeError::Core(CoreError::NotOwner {
                collection,
                key,
                owner,
                epoch,
                ..
            }) => Status::failed_precondition(format!(
                "{collection} key {:?} is owned by region {} (ownership epoch {epoch}), not {}: write to the owner",
                String::from_utf8_lossy(key),
                self.names.name(*owner),
                self.names.name(self.region),
            )),
            other => status_of_node(other),
        }
    }

    /// Sends `write` on to `owner` (a collection configured to forward).
    async fn forward(
        &self,
        owner: RegionId,
        authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        write: Forward,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let mut client = {
            let cached = self.owners.lock().ok().and_then(|m| m.get(&owner).cloned());
            match cached {
                Some(c) => c,
                None => {
                    let address = self.addresses.get(&owner).ok_or_else(|| {
                        Status::failed_precondition(format!(
                            "the owner {} has no address in this node's configuration",
                            self.names.name(owner)
                        ))
                    })?;
                    let target = match &self.security.tls {
                        Some(_) => crate::tls::https(address),
                        None => address.clone(),
                    };
                    let mut endpoint = tonic::transport::Endpoint::from_shared(target)
                        .map_err(|e| Status::internal(format!("owner address {address}: {e}")))?;
                    if let Some(tls) = &self.security.tls {
                        let domain = crate::certs::region_dns_name(&self.names.name(owner));
                        endpoint = endpoint.tls_config(tls.dial_config(&domain)).map_err(|e| {
                            Status::internal(format!("owner address {address}: {e}"))
                        })?;
                    }
                    let channel = endpoint
                        .connect_timeout(Duration::from_secs(2))
                        .connect()
                        .await
                        .map_err(|e| {
                            Status::unavailable(format!(
                                "cannot reach the owner {} to forward the write: {e}",
                                self.names.name(owner)
                            ))
                        })?;
                    let c = pb::concord_client::ConcordClient::new(channel);
                    if let Ok(mut m) = self.owners.lock() {
                        m.insert(owner, c.clone());
                    }
                    c
                }
            }
        };
        fn mark<T>(
            t: T,
            authorization: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        ) -> Request<T> {
            let mut r = Request::new(t);
            r.metadata_mut()
                .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            // Without TLS the owner knows the client only by its token.
            if let Some(a) = authorization {
                r.metadata_mut().insert(AUTHORIZATION, a.clone());
            }
            r
        }
        let a = authorization.as_ref();
        match write {
            Forward::Put(r) => client.put(mark(r, a)).await,
            Forward::Delete(r) => client.delete(mark(r, a)).await,
            Forward::Increment(r) => client.increment(mark(r, a)).await,
        }
    }

    fn needed(&self, c: Option<&pb::WriteConcern>) -> Result<(Needed, Duration), Status> {
        use pb::write_concern::Level;
        let timeout = c
            .map(|c| c.timeout_ms)
            .filter(|t| *t > 0)
            .map_or(self.settings.write_timeout, |t| {
                Duration::from_millis(u64::from(t))
            });
        let level = c.map_or(Ok(Level::Unspecified), |c| Level::try_from(c.level));
        let needed = match level {
            Ok(Level::Local) => Needed::Local,
            Ok(Level::All) => Needed::All,
            Ok(Level::Regions) => {
                let n = c.map_or(0, |c| c.regions);
                if n == 0 {
                    return Err(Status::invalid_argument(
                        "concern.regions must be at least 1 for LEVEL_REGIONS",
                    ));
                }
                Needed::Others(usize::try_from(n).unwrap_or(usize::MAX))
            }
            Ok(Level::Unspecified) => match self.settings.write_concern {
                WriteConcern::Local => Needed::Local,
                WriteConcern::All => Needed::All,
                WriteConcern::Regions(n) => {
                    Needed::Others(usize::try_from(n).unwrap_or(usize::MAX))
                }
            },
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "concern.level {} is not a level",
                    c.map_or(0, |c| c.level)
                )));
            }
        };
        Ok((needed, timeout))
    }

    /// Sends a write and waits for its concern. On timeout the status says
    /// where the write is durable: it stands, and keeps replicating.
    async fn submit(
        &self,
        make: impl FnOnce(WriteReply) -> Command,
        timeout: Duration,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.submit_raw(make, timeout)
            .await
            .map_err(|e| self.reject(self.status(&e)))
    }

    /// [`Self::submit`], keeping the engine's error for the caller to act on.
    async fn submit_raw(
        &self,
        make: impl FnOnce(WriteReply) -> Command,
        timeout: Duration,
    ) -> Result<Response<pb::WriteResponse>, NodeError> {
        let (reply, mut accepted, done) = WriteReply::new();
        self.driver.send(make(reply))?;
        let durable = match tokio::time::timeout(timeout, done).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(NodeError::Stopped),
            Err(_) => {
                let Ok(write) = accepted.try_recv() else {
                    return Err(NodeError::Status(Status::deadline_exceeded(format!(
                        "the write was not accepted within {} ms",
                        timeout.as_millis()
                    ))));
                };
                return Err(NodeError::Status(
                    self.concern_timeout(write, timeout).await,
                ));
            }
        };
        Ok(Response::new(self.write_response(&durable)))
    }

    /// The status of a write whose concern was not met in time.
    async fn concern_timeout(&self, write: WriteRef, timeout: Duration) -> Status {
        let here = self.region;
        let found = self
            .driver
            .inspect(move |e| {
                let local = e
                    .durable_cursors()
                    .iter()
                    .any(|(o, s)| *o == here && *s >= write.seq);
                let peers = e.durable_at(write);
                let missing: Vec<RegionId> = e
                    .config()
                    .peers
                    .iter()
                    .copied()
                    .filter(|p| *p != here && !peers.contains(p))
                    .collect();
                (local, peers, missing)
            })
            .await;
        let Ok((local, peers, missing)) = found else {
            return Status::unavailable("the node stopped");
        };
        let mut durable: Vec<String> = Vec::new();
        if local {
            durable.push(format!("{} (here)", self.names.name(here)));
        }
        durable.extend(peers.iter().map(|p| self.names.name(*p)));
        let list = |v: &[String]| {
            if v.is_empty() {
                "nowhere yet".to_owned()
            } else {
                v.join(", ")
            }
        };
        let missing: Vec<String> = missing.iter().map(|p| self.names.name(*p)).collect();
        Status::deadline_exceeded(format!(
            "write concern not met within {} ms: write {write} is durable in {}; not yet in {}. The write stands and keeps replicating.",
            timeout.as_millis(),
            list(&durable),
            list(&missing),
        ))
    }

    fn write_response(&self, d: &Durable) -> pb::WriteResponse {
        pb::WriteResponse {
            token: Some(convert::write_ref_to_pb(d.write)),
            durable_in: std::iter::once(self.region)
                .chain(d.peers.iter().copied())
                .map(|r| self.names.name(r))
                .collect(),
        }
    }

    /// A client write: made here, or forwarded to the key's owner when the
    /// collection says so (once: a forwarded write is never forwarded again).
    async fn write(
        &self,
        forwarded: bool,
        authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        request: Forward,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (collection, key, op, context, concern) = match &request {
            Forward::Put(r) => (
                &r.collection,
                &r.key,
                ClientOp::Put(r.value.clone()),
                r.context.as_ref(),
                r.concern.as_ref(),
            ),
            Forward::Delete(r) => (
                &r.collection,
                &r.key,
                ClientOp::Delete,
                r.context.as_ref(),
                r.concern.as_ref(),
            ),
            Forward::Increment(r) => (
                &r.collection,
                &r.key,
                ClientOp::Add(r.delta),
                None,
                r.concern.as_ref(),
            ),
        };
        match self
            .write_here(collection, key.clone(), op, context, concern)
            .await
        {
            Err(NodeError::Core(CoreError::NotOwner {
                owner,
                forward: true,
                ..
            })) if !forwarded => self.forward(owner, authorization, request).await,
            Err(e) => Err(self.reject(self.status(&e))),
            Ok(r) => Ok(r),
        }
    }

    async fn write_here(
        &self,
        collection: &str,
        key: Vec<u8>,
        op: ClientOp,
        context: Option<&pb::VersionVector>,
        concern: Option<&pb::WriteConcern>,
    ) -> Result<Response<pb::WriteResponse>, NodeError> {
        let collection = collection_of(collection).map_err(NodeError::Status)?;
        let context = context.map(|c| convert::vv(c, "context")).transpose()?;
        let (needed, timeout) = self.needed(concern).map_err(NodeError::Status)?;
        let write = ClientWrite {
            collection,
            key,
            op,
            context,
        };
        self.submit_raw(
            |reply| Command::Write {
                write,
                needed,
                reply,
            },
            timeout,
        )
        .await
    }

    fn version_to_pb(&self, v: &Version) -> pb::Version {
        version_to_pb(v, &self.names)
    }
}

/// A version on the wire.
pub fn version_to_pb(v: &Version, names: &RegionNames) -> pb::Version {
    pb::Version {
        value: v.value.as_ref().map(|b| b.to_vec()),
        write: Some(convert::write_ref_to_pb(v.write)),
        origin: names.name(v.write.origin),
        hlc: v.hlc.as_u64(),
        wall_micros: v.wall.as_micros(),
    }
}

fn collection_of(name: &str) -> Result<Collection, Status> {
    Collection::new(name).map_err(|e| Status::invalid_argument(format!("collection: {e}")))
}

/// A conflict item on the wire.
pub fn item_to_pb(item: &ConflictItem, names: &RegionNames) -> pb::ConflictItem {
    let (reason, detail) = match &item.reason {
        ConflictReason::Concurrent => (
            "concurrent",
            format!("{} concurrent versions", item.versions.len()),
        ),
        ConflictReason::SiblingCap { max } => (
            "sibling-cap",
            format!("more than {max} concurrent versions"),
        ),
        ConflictReason::FutureTimestamp { ahead_micros } => (
            "future-timestamp",
            format!(
                "stamped {:.3} s ahead of this region's clock; held until the clock catches up",
                *ahead_micros as f64 / 1e6
            ),
        ),
        ConflictReason::Fenced {
            owner, fence_epoch, ..
        } => (
            "fenced",
            format!(
                "written by a region fenced at ownership epoch {fence_epoch}; the key's owner is {}",
                names.name(*owner)
            ),
        ),
    };
    pb::ConflictItem {
        id: item.id,
        collection: item.entity.collection.as_str().to_owned(),
        key: item.entity.key.clone(),
        reason: reason.to_owned(),
        detail,
        versions: item
            .versions
            .iter()
            .map(|v| version_to_pb(v, names))
            .collect(),
        opened_micros: item.opened.as_micros(),
        status: match item.status {
            ItemStatus::Open => "open",
            ItemStatus::Resolved { .. } => "resolved",
            ItemStatus::Released { .. } => "released",
        }
        .to_owned(),
        position: item.position,
    }
}

/// The most loser records one `ListLosers` call returns.
pub const MAX_LOSERS_PAGE: usize = 10_000;

/// A loser-log record on the wire.
pub fn loser_to_pb(r: &LoserRecord, names: &RegionNames) -> pb::LoserRecord {
    pb::LoserRecord {
        id: r.id,
        collection: r.entity.collection.as_str().to_owned(),
        key: r.entity.key.clone(),
        loser: Some(version_to_pb(&r.loser, names)),
        winner: Some(convert::write_ref_to_pb(r.winner)),
        at_micros: r.at.as_micros(),
    }
}

impl ClientService {
    /// `Put`, `Delete` and `Increment`: admits the call, then makes the write
    /// here or forwards it to the key's owner.
    async fn client_write<T>(
        &self,
        request: Request<T>,
        wrap: fn(T) -> Forward,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        let forwarded = request.metadata().contains_key(FORWARDED);
        let authorization = request.metadata().get(AUTHORIZATION).cloned();
        self.checked_write(
            &principal,
            forwarded,
            authorization,
            wrap(request.into_inner()),
        )
        .await
    }
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<pb::ConflictItem, Status>> + Send>>;

#[tonic::async_trait]
impl pb::concord_server::Concord for ClientService {
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.client_write(request, Forward::Put).await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.client_write(request, Forward::Delete).await
    }

    async fn increment(
        &self,
        request: Request<pb::IncrementRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.client_write(request, Forward::Increment).await
    }

    async fn write_many(
        &self,
        request: Request<pb::WriteManyRequest>,
    ) -> Result<Response<pb::WriteManyResponse>, Status> {
        use pb::write_item::Op as ItemOp;
        let (principal, _permit) = self.admit(&request)?;
        let r = request.into_inner();
        if r.writes.is_empty() {
            return Err(Status::invalid_argument("writes: empty"));
        }
        if r.writes.len() > self.security.limits.max_write_many {
            return Err(self.reject(Status::invalid_argument(format!(
                "writes: {} items, more than limits.max_write_many ({})",
                r.writes.len(),
                self.security.limits.max_write_many
            ))));
        }
        let mut permitted: Option<&str> = None;
        for (i, w) in r.writes.iter().enumerate() {
            // Items of one collection in a row are checked once.
            if permitted != Some(w.collection.as_str()) {
                principal.can_write(&w.collection, false).map_err(|s| {
                    self.reject(Status::new(
                        s.code(),
                        format!("writes[{i}]: {}", s.message()),
                    ))
                })?;
                permitted = Some(&w.collection);
            }
            let value = match &w.op {
                Some(ItemOp::Put(v)) => Some(v.as_slice()),
                _ => None,
            };
            if self.sizes_exceeded(&w.key, value) {
                self.check_sizes(&format!("writes[{i}]."), &w.key, value)?;
            }
        }
        let count = r.writes.len();
        let mut writes = Vec::with_capacity(count);
        let mut last: Option<Collection> = None;
        for (i, w) in r.writes.into_iter().enumerate() {
            let collection = match &last {
                Some(c) if c.as_str() == w.collection => c.clone(),
                _ => {
                    let c = Collection::new(&w.collection).map_err(|e| {
                        Status::invalid_argument(format!("writes[{i}].collection: {e}"))
                    })?;
                    last = Some(c.clone());
                    c
                }
            };
            let op = match w.op {
                Some(ItemOp::Put(v)) => ClientOp::Put(v),
                Some(ItemOp::Delete(_)) => ClientOp::Delete,
                Some(ItemOp::Increment(d)) => ClientOp::Add(d),
                None => return Err(Status::invalid_argument(format!("writes[{i}].op: missing"))),
            };
            let context = w
                .context
                .as_ref()
                .map(|c| convert::vv(c, &format!("writes[{i}].context")))
                .transpose()
                .map_err(|e| status_of_node(&e))?;
            writes.push(ClientWrite {
                collection,
                key: w.key,
                op,
                context,
            });
        }
        let (needed, timeout) = self.needed(r.concern.as_ref())?;
        let response = self
            .submit(
                |reply| Command::WriteMany {
                    writes,
                    needed,
                    reply,
                },
                timeout,
            )
            .await?
            .into_inner();
        let last = response.token.unwrap_or_default();
        let count32 = u32::try_from(count).unwrap_or(u32::MAX);
        Ok(Response::new(pb::WriteManyResponse {
            first: Some(pb::WriteRef {
                origin: last.origin,
                seq: last.seq + 1 - count as u64,
            }),
            count: count32,
            durable_in: response.durable_in,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        use pb::get_response::{Missing, Result as R};
        let (principal, _permit) = self.admit(&request)?;
        let r = request.into_inner();
        principal
            .can_read(&r.collection)
            .map_err(|s| self.reject(s))?;
        let collection = collection_of(&r.collection)?;
        let after = r
            .after
            .as_ref()
            .map(|a| convert::write_ref(a, "after"))
            .transpose()
            .map_err(|e| status_of_node(&e))?;
        let wait = if r.wait_ms > 0 {
            Duration::from_millis(u64::from(r.wait_ms))
        } else {
            self.settings.read_wait
        };
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(Command::Read {
                collection,
                key: r.key,
                after,
                reply,
            })
            .map_err(|e| status_of_node(&e))?;
        let value = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(v)) => v.map_err(|e| status_of(&e))?,
            Ok(Err(_)) => return Err(Status::unavailable("the node stopped")),
            Err(_) => {
                let after = after.map_or_else(String::new, |a| a.to_string());
                return Err(Status::deadline_exceeded(format!(
                    "write {after} was not applied in this region ({}) within {} ms",
                    self.names.name(self.region),
                    wait.as_millis()
                )));
            }
        };
        let result = match value {
            ReadValue::Missing => R::Missing(Missing {}),
            ReadValue::Value(v) => R::Value(self.version_to_pb(&v)),
            ReadValue::Siblings { versions, context } => R::Siblings(pb::Siblings {
                versions: versions.iter().map(|v| self.version_to_pb(v)).collect(),
                context: Some(convert::vv_to_pb(&context)),
            }),
            ReadValue::Counter(n) => R::Counter(i64::try_from(n).map_err(|_| {
                Status::out_of_range(format!("the counter's value {n} does not fit 64 bits"))
            })?),
        };
        Ok(Response::new(pb::GetResponse {
            result: Some(result),
        }))
    }

    async fn list_conflicts(
        &self,
        request: Request<pb::ListConflictsRequest>,
    ) -> Result<Response<pb::ListConflictsResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        let r = request.into_inner();
        let filter = if r.collection.is_empty() {
            None
        } else {
            principal
                .can_read(&r.collection)
                .map_err(|s| self.reject(s))?;
            Some(collection_of(&r.collection)?)
        };
        let names = self.names.clone();
        let limit = if r.limit == 0 {
            usize::MAX
        } else {
            usize::try_from(r.limit).unwrap_or(usize::MAX)
        };
        let (items, depth) = self
            .driver
            .inspect(move |e| {
                let items: Vec<pb::ConflictItem> = e
                    .conflicts()
                    .filter(|i| r.include_closed || i.status.is_open())
                    .filter(|i| filter.as_ref().is_none_or(|c| &i.entity.collection == c))
                    .filter(|i| principal.reads(i.entity.collection.as_str()))
                    .take(limit)
                    .map(|i| item_to_pb(i, &names))
                    .collect();
                (items, e.queue_depth())
            })
            .await
            .map_err(|e| status_of_node(&e))?;
        Ok(Response::new(pb::ListConflictsResponse {
            items,
            depth: depth as u64,
        }))
    }

    async fn list_losers(
        &self,
        request: Request<pb::ListLosersRequest>,
    ) -> Result<Response<pb::ListLosersResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        let r = request.into_inner();
        let filter = if r.collection.is_empty() {
            if !r.key.is_empty() {
                return Err(Status::invalid_argument("key: a key needs its collection"));
            }
            None
        } else {
            principal
                .can_read(&r.collection)
                .map_err(|s| self.reject(s))?;
            Some(collection_of(&r.collection)?)
        };
        let limit = match usize::try_from(r.limit) {
            Ok(0) | Err(_) => MAX_LOSERS_PAGE,
            Ok(n) => n.min(MAX_LOSERS_PAGE),
        };
        let names = self.names.clone();
        let (losers, more) = self
            .driver
            .inspect(move |e| {
                let mut matching = e
                    .losers()
                    .filter(|l| r.after_id.is_none_or(|a| l.id > a))
                    .filter(|l| filter.as_ref().is_none_or(|c| &l.entity.collection == c))
                    .filter(|l| r.key.is_empty() || l.entity.key == r.key)
                    .filter(|l| principal.reads(l.entity.collection.as_str()));
                let page: Vec<pb::LoserRecord> = matching
                    .by_ref()
                    .take(limit)
                    .map(|l| loser_to_pb(l, &names))
                    .collect();
                let more = matching.next().is_some();
                (page, more)
            })
            .await
            .map_err(|e| status_of_node(&e))?;
        Ok(Response::new(pb::ListLosersResponse { losers, more }))
    }

    type WatchConflictsStream = ItemStream;

    async fn watch_conflicts(
        &self,
        request: Request<pb::WatchConflictsRequest>,
    ) -> Result<Response<Self::WatchConflictsStream>, Status> {
        let (principal, permit) = self.admit(&request)?;
        let mut after = request.into_inner().after;
        let driver = self.driver.clone();
        let names = self.names.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            // The watch counts against its client's calls while it is open.
            let _permit = permit;
            let mut changes = driver.queue_changes();
            loop {
                let names = names.clone();
                let from = after;
                let Ok(items) = driver
                    .inspect(move |e| {
                        e.conflicts_after(from)
                            .into_iter()
                            .map(|i| item_to_pb(i, &names))
                            .collect::<Vec<_>>()
                    })
                    .await
                else {
                    let _ = tx.send(Err(Status::unavailable("the node stopped"))).await;
                    return;
                };
                for item in items {
                    after = after.max(item.position);
                    if !principal.reads(&item.collection) {
                        continue;
                    }
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn resolve_conflict(
        &self,
        request: Request<pb::ResolveConflictRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        principal
            .can_admin("ResolveConflict")
            .map_err(|s| self.reject(s))?;
        let r = request.into_inner();
        if let Some(v) = &r.value
            && v.len() > self.security.max_value_bytes
        {
            return Err(self.reject(Status::invalid_argument(format!(
                "value: {} bytes, more than tuning.max_value_bytes ({})",
                v.len(),
                self.security.max_value_bytes
            ))));
        }
        let (needed, timeout) = self.needed(r.concern.as_ref())?;
        self.submit(
            |reply| Command::Resolve {
                item: r.id,
                value: r.value,
                expected_position: r.expected_position,
                needed,
                reply,
            },
            timeout,
        )
        .await
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let _admitted = self.admit(&request)?;
        let names = self.names.clone();
        let mut status = self
            .driver
            .inspect(move |e| crate::status::status_of_engine(e, &names))
            .await
            .map_err(|e| status_of_node(&e))?;
        status.rejections = Some(self.security.rejections.to_pb());
        Ok(Response::new(status))
    }

    async fn owner(
        &self,
        request: Request<pb::OwnerRequest>,
    ) -> Result<Response<pb::OwnerResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        let r = request.into_inner();
        principal
            .can_read(&r.collection)
            .map_err(|s| self.reject(s))?;
        let collection = collection_of(&r.collection)?;
        let c = collection.clone();
        let (owner, epoch) = self
            .driver
            .inspect(move |e| {
                let owner = match e.collection(&c) {
                    // An unknown collection is not found, not "not owned".
                    None => Err(CoreError::UnknownCollection(c)),
                    Some(_) => e.owner(&c, &r.key),
                };
                (owner, e.ownership_epoch())
            })
            .await
            .map_err(|e| self.status(&e))?;
        match owner.map_err(|e| self.status(&NodeError::Core(e)))? {
            Some(owner) => Ok(Response::new(pb::OwnerResponse {
                owner: self.names.name(owner),
                epoch,
            })),
            None => Err(Status::failed_precondition(format!(
                "collection {collection} is not owned: every region accepts its writes"
            ))),
        }
    }

    async fn takeover(
        &self,
        request: Request<pb::TakeoverRequest>,
    ) -> Result<Response<pb::TakeoverResponse>, Status> {
        let (principal, _permit) = self.admit(&request)?;
        principal
            .can_admin("Takeover")
            .map_err(|s| self.reject(s))?;
        let r = request.into_inner();
        let from = self.names.id(&r.from).ok_or_else(|| {
            Status::invalid_argument(format!("from: unknown region {:?}", r.from))
        })?;
        let reason = if r.reason.is_empty() {
            "operator takeover".to_owned()
        } else {
            r.reason
        };
        let event = self
            .driver
            .act(move |e| match e.take_over(from, reason) {
                Ok((event, out)) => (Ok(event), out),
                Err(err) => (Err(err), Vec::new()),
            })
            .await
            .map_err(|e| self.status(&e))?
            .map_err(|e| self.status(&NodeError::Core(e)))?;
        tracing::warn!(from = %self.names.name(event.from), epoch = event.epoch, at_risk = event.at_risk_writes, "took over");
        Ok(Response::new(pb::TakeoverResponse {
            event: Some(crate::status::failover_to_pb(&event, &self.names)),
        }))
    }

    async fn handoff(
        &self,
        request: Request<pb::HandoffRequest>,
    ) -> Result<Response<pb::HandoffResponse>, Status> {
        use concord_core::HandoffStatus;
        let (principal, _permit) = self.admit(&request)?;
        principal.can_admin("Handoff").map_err(|s| self.reject(s))?;
        let r = request.into_inner();
        let collection = collection_of(&r.collection)?;
        let to = self
            .names
            .id(&r.to)
            .ok_or_else(|| Status::invalid_argument(format!("to: unknown region {:?}", r.to)))?;
        let timeout = if r.timeout_ms == 0 {
            self.settings.write_timeout
        } else {
            Duration::from_millis(u64::from(r.timeout_ms))
        };
        let id = self
            .driver
            .inspect(move |e| e.hand_off(&collection, r.keys, to))
            .await
            .map_err(|e| self.status(&e))?
            .map_err(|e| self.status(&NodeError::Core(e)))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let h = self
                .driver
                .inspect(move |e| e.handoffs().iter().find(|h| h.id == id).cloned())
                .await
                .map_err(|e| self.status(&e))?;
            match h.map(|h| (h.status, h.drain_to)) {
                Some((HandoffStatus::Completed { epoch, .. }, drain_to)) => {
                    return Ok(Response::new(pb::HandoffResponse {
                        epoch,
                        drained_through: drain_to,
                    }));
                }
                Some((HandoffStatus::Draining, _)) => {}
                Some((other, _)) => {
                    return Err(Status::aborted(format!("handoff {id} ended: {other:?}")));
                }
                None => return Err(Status::internal(format!("handoff {id} vanished"))),
            }
            if tokio::time::Instant::now() >= deadline {
                // Give the keys back rather than leave them unwritable.
                let cancelled = self.driver.inspect(move |e| e.cancel_handoff(id)).await;
                return Err(Status::deadline_exceeded(format!(
                    "handoff {id} to {} did not drain within {} ms (the new owner has not acknowledged every write); {}",
                    self.names.name(to),
                    timeout.as_millis(),
                    match cancelled {
                        Ok(Ok(())) => "it was cancelled: the keys stay here",
                        _ => "it completed or ended meanwhile: check Owner",
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
