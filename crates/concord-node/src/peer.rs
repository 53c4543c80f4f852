//! The peer service: one bidirectional replication stream per pair of
//! regions, opened by the region with the lower id, with reconnects and
//! backoff; and state transfer in pieces.
//!
//! Both sides of a stream send a hello first. Each side checks that the
//! other is the region it expects, by id and by name, before anything else
//! flows. The engine does the rest: it streams the writes past the peer's
//! cursors in batches of many writes, bounded by a window of unacknowledged
//! batches (flow control), and answers with acks after its group commits.
//!
//! With TLS on, both sides authenticate by certificate (mutual TLS): the
//! dialer verifies that the node it reaches holds the certificate of the
//! region it dials (`<region>.region.concord`), and the node taking the
//! stream requires a client certificate from the configured CA that names
//! the region of the hello, else `UNAUTHENTICATED` (no certificate) or
//! `PERMISSION_DENIED` (another region). `Snapshot` needs a peer
//! certificate too. Each region may have `limits.max_concurrent_per_peer`
//! peer calls in progress, and a batch holds at most `limits.max_peer_batch`
//! writes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use concord_core::PeerMessage;
use concord_crdt::RegionId;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::RegionNames;
use crate::driver::{Command, DriverHandle};
use crate::limits::{Gate, Rejections};
use crate::tls::TlsMaterial;
use crate::{NodeError, convert, pb};

/// A snapshot travels in pieces of this size.
const SNAPSHOT_PIECE: usize = 1 << 20;

/// Who this node is, for its peer connections.
#[derive(Clone)]
pub struct PeerContext {
    /// The engine thread.
    pub driver: DriverHandle,
    /// This node's region.
    pub region: RegionId,
    /// Every region's name.
    pub names: RegionNames,
    /// The regions this node replicates with.
    pub peers: Vec<RegionId>,
    /// The largest snapshot accepted from a peer, in bytes.
    pub max_snapshot_bytes: usize,
    /// Connection numbers.
    pub conns: Arc<AtomicU64>,
    /// TLS material (`None`: plaintext, `tls.insecure = true`).
    pub tls: Option<Arc<TlsMaterial>>,
    /// Most writes accepted in one batch from a peer.
    pub max_peer_batch: usize,
    /// Peer calls in progress, per region.
    pub gate: Arc<Gate>,
    /// Refusals, counted.
    pub rejections: Arc<Rejections>,
}

impl PeerContext {
    /// A refusal of a peer call, counted.
    fn refuse(&self, status: Status) -> Status {
        self.rejections.peer();
        self.rejections.count(status)
    }

    /// With TLS on, the regions the caller's certificate names (it must
    /// have one); `None` in plaintext.
    fn caller<T>(&self, request: &Request<T>) -> Result<Option<Vec<String>>, Status> {
        if self.tls.is_none() {
            return Ok(None);
        }
        match crate::tls::caller_regions(request) {
            Some(regions) => Ok(Some(regions)),
            None => Err(self.refuse(Status::unauthenticated(
                "the peer service needs a region certificate (mutual TLS): this call came without a client certificate",
            ))),
        }
    }

    /// The certificate's region must be the hello's.
    fn check_cert(&self, cert: Option<&[String]>, name: &str) -> Result<(), Status> {
        match cert {
            None => Ok(()),
            Some([one]) if one == name => Ok(()),
            Some(named) => Err(self.refuse(Status::permission_denied(format!(
                "a peer says hello as {name:?}, but its certificate names {}",
                if named.is_empty() {
                    "no region".to_owned()
                } else {
                    named.join(", ")
                }
            )))),
        }
    }

    fn check_hello(
        &self,
        region: RegionId,
        name: &str,
        expected: Option<RegionId>,
    ) -> Result<(), Status> {
        if region == self.region {
            return Err(Status::permission_denied(format!(
                "a peer says hello as {name} ({region}), which is this node's own region"
            )));
        }
        if !self.peers.contains(&region) {
            return Err(Status::permission_denied(format!(
                "region {region} ({name}) is not a peer of this node"
            )));
        }
        let known = self.names.name(region);
        if known != name {
            return Err(Status::permission_denied(format!(
                "a peer says hello as region {region} named {name:?}, but this node knows region {region} as {known:?}"
            )));
        }
        if let Some(want) = expected
            && want != region
        {
            return Err(Status::permission_denied(format!(
                "the connection to {} answered as {name} ({region})",
                self.names.name(want)
            )));
        }
        Ok(())
    }
}

/// Turns the engine's messages for one peer into frames (a snapshot becomes
/// pieces), until either side closes.
async fn encode(
    mut from_engine: mpsc::UnboundedReceiver<PeerMessage>,
    to_wire: mpsc::Sender<pb::PeerFrame>,
    name: String,
) {
    while let Some(m) = from_engine.recv().await {
        // A batch is moved onto the wire (its keys and values are not copied).
        let m = match m {
            PeerMessage::Batch(b) => {
                let frame = pb::PeerFrame {
                    frame: Some(pb::peer_frame::Frame::Batch(convert::batch_into_pb(b))),
                };
                if to_wire.send(frame).await.is_err() {
                    return;
                }
                continue;
            }
            other => other,
        };
        let frames = match convert::frame_to_pb(&m, &name) {
            Some(f) => vec![f],
            None => match concord_crdt::codec::encode(&m) {
                Ok(bytes) => {
                    let pieces: Vec<&[u8]> = bytes.chunks(SNAPSHOT_PIECE).collect();
                    let n = pieces.len();
                    pieces
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| pb::PeerFrame {
                            frame: Some(pb::peer_frame::Frame::Snapshot(pb::SnapshotChunk {
                                data: p.to_vec(),
                                last: i + 1 == n,
                            })),
                        })
                        .collect()
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a snapshot");
                    continue;
                }
            },
        };
        for f in frames {
            if to_wire.send(f).await.is_err() {
                return;
            }
        }
    }
}

/// Feeds a peer's frames to the engine until the stream ends or breaks.
/// Returns why it ended.
async fn pump(
    ctx: &PeerContext,
    mut inbound: Streaming<pb::PeerFrame>,
    peer: RegionId,
    conn: u64,
) -> Result<(), Status> {
    let mut snapshot: Vec<u8> = Vec::new();
    loop {
        let Some(frame) = inbound.message().await? else {
            return Ok(());
        };
        if let Some(pb::peer_frame::Frame::Snapshot(piece)) = &frame.frame {
            if snapshot.len() + piece.data.len() > ctx.max_snapshot_bytes {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than {} bytes",
                    ctx.max_snapshot_bytes
                )));
            }
            snapshot.extend_from_slice(&piece.data);
            if !piece.last {
                continue;
            }
            let message: PeerMessage = concord_crdt::codec::decode(&std::mem::take(&mut snapshot))
                .map_err(|e| Status::invalid_argument(format!("snapshot: {e}")))?;
            if !matches!(message, PeerMessage::Snapshot { .. }) {
                return Err(Status::invalid_argument(
                    "snapshot pieces hold another message",
                ));
            }
            ctx.driver
                .send(Command::PeerMessage {
                    peer,
                    conn,
                    message,
                })
                .map_err(|_| Status::unavailable("the node is stopping"))?;
            continue;
        }
        if let Some(pb::peer_frame::Frame::Batch(b)) = &frame.frame
            && b.writes.len() > ctx.max_peer_batch
        {
            return Err(ctx.rejections.count(Status::invalid_argument(format!(
                "batch.writes: {} writes, more than limits.max_peer_batch ({})",
                b.writes.len(),
                ctx.max_peer_batch
            ))));
        }
        let (message, name) = convert::frame(frame).map_err(|e| {
            ctx.rejections
                .count(Status::invalid_argument(e.to_string()))
        })?;
        if let (PeerMessage::Hello { region, .. }, Some(name)) = (&message, name) {
            ctx.check_hello(*region, &name, Some(peer))?;
        }
        ctx.driver
            .send(Command::PeerMessage {
                peer,
                conn,
                message,
            })
            .map_err(|_| Status::unavailable("the node is stopping"))?;
    }
}

/// The engine's side of one connection: registers it, and returns the
/// outbound frames.
fn open(
    ctx: &PeerContext,
    peer: RegionId,
) -> Result<(u64, ReceiverStream<pb::PeerFrame>), NodeError> {
    let conn = ctx.conns.fetch_add(1, Ordering::Relaxed);
    let (tx, from_engine) = mpsc::unbounded_channel();
    let (to_wire, wire) = mpsc::channel(64);
    tokio::spawn(encode(from_engine, to_wire, ctx.names.name(ctx.region)));
    ctx.driver.send(Command::PeerUp { peer, conn, tx })?;
    Ok((conn, ReceiverStream::new(wire)))
}

/// The peer gRPC service.
#[derive(Clone)]
pub struct PeerService {
    ctx: PeerContext,
}

impl PeerService {
    /// A service for `ctx`.
    pub fn new(ctx: PeerContext) -> Self {
        Self { ctx }
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::PeerFrame, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    type ReplicateStream = FrameStream;
    type SnapshotStream = ChunkStream;

    async fn replicate(
        &self,
        request: Request<Streaming<pb::PeerFrame>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let cert = self.ctx.caller(&request)?;
        // With TLS, the certificate names the caller before its hello does.
        let mut permit = cert
            .as_ref()
            .map(|c| self.ctx.gate.enter(&c.join(",")))
            .transpose()
            .map_err(|s| self.ctx.refuse(s))?;
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream closed before its hello"))?;
        let (hello, name) =
            convert::frame(first).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (PeerMessage::Hello { region, .. }, Some(name)) = (&hello, name) else {
            return Err(Status::invalid_argument("the first frame must be a hello"));
        };
        let peer = *region;
        self.ctx.check_cert(cert.as_deref(), &name)?;
        self.ctx
            .check_hello(peer, &name, None)
            .map_err(|s| self.ctx.refuse(s))?;
        if permit.is_none() {
            permit = Some(self.ctx.gate.enter(&name).map_err(|s| self.ctx.refuse(s))?);
        }
        let (conn, outbound) =
            open(&self.ctx, peer).map_err(|_| Status::unavailable("the node is stopping"))?;
        self.ctx
            .driver
            .send(Command::PeerMessage {
                peer,
                conn,
                message: hello,
            })
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(status) = pump(&ctx, inbound, peer, conn).await {
                tracing::warn!(%peer, %status, "replication stream from peer ended");
            }
            let _ = ctx.driver.send(Command::PeerDown { peer, conn });
        });
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            outbound, Ok,
        ))))
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let key =
            match self.ctx.caller(&request)? {
                None => "(plaintext)".to_owned(),
                Some(regions) => {
                    let peer = match regions.as_slice() {
                        [one] => self
                            .ctx
                            .names
                            .id(one)
                            .filter(|id| self.ctx.peers.contains(id)),
                        _ => None,
                    };
                    if peer.is_none() {
                        return Err(self.ctx.refuse(Status::permission_denied(format!(
                        "a snapshot is for peers: the certificate names {}, not one peer region",
                        if regions.is_empty() { "no region".to_owned() } else { regions.join(", ") }
                    ))));
                    }
                    regions.join(",")
                }
            };
        let _permit = self.ctx.gate.enter(&key).map_err(|s| self.ctx.refuse(s))?;
        let message = self
            .ctx
            .driver
            .inspect(crate::node::snapshot_of)
            .await
            .map_err(|_| Status::unavailable("the node is stopping"))?
            .map_err(|e| Status::internal(e.to_string()))?;
        let bytes =
            concord_crdt::codec::encode(&message).map_err(|e| Status::internal(e.to_string()))?;
        let pieces: Vec<Result<pb::SnapshotChunk, Status>> = {
            let n = bytes.len().div_ceil(SNAPSHOT_PIECE).max(1);
            (0..n)
                .map(|i| {
                    let end = ((i + 1) * SNAPSHOT_PIECE).min(bytes.len());
                    Ok(pb::SnapshotChunk {
                        data: bytes[i * SNAPSHOT_PIECE..end].to_vec(),
                        last: i + 1 == n,
                    })
                })
                .collect()
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(pieces))))
    }
}

/// Keeps a replication stream to `peer` at `address` open: dials, streams,
/// and redials with exponential backoff (100 ms up to 5 s) until `stop`.
pub async fn dial(
    ctx: PeerContext,
    peer: RegionId,
    address: String,
    max_message_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&ctx, peer, &address, max_message_bytes).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::debug!(%peer, %address, error = %e, "replication stream failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: connect, stream until it breaks. `Ok` if it was
/// established at all.
async fn connect(
    ctx: &PeerContext,
    peer: RegionId,
    address: &str,
    max_message_bytes: usize,
) -> Result<(), NodeError> {
    let target = match &ctx.tls {
        Some(_) => crate::tls::https(address),
        None => address.to_owned(),
    };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(target).map_err(|source| NodeError::Connect {
            addr: address.to_owned(),
            source,
        })?;
    if let Some(tls) = &ctx.tls {
        let domain = crate::certs::region_dns_name(&ctx.names.name(peer));
        endpoint = endpoint
            .tls_config(tls.dial_config(&domain))
            .map_err(|source| NodeError::Connect {
                addr: address.to_owned(),
                source,
            })?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(crate::node::WINDOW))
        .initial_connection_window_size(Some(2 * crate::node::WINDOW))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| NodeError::Connect {
            addr: address.to_owned(),
            source,
        })?;
    let mut client = pb::peer_client::PeerClient::new(channel)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let (conn, outbound) = open(ctx, peer)?;
    let result = match client.replicate(outbound).await {
        Ok(response) => {
            tracing::info!(%peer, %address, "replication stream open");
            let r = pump(ctx, response.into_inner(), peer, conn).await;
            if let Err(status) = &r {
                tracing::warn!(%peer, %status, "replication stream to peer ended");
            }
            Ok(())
        }
        Err(status) => Err(NodeError::Status(status)),
    };
    let _ = ctx.driver.send(Command::PeerDown { peer, conn });
    result
}
