//! The engine thread: the one owner of a region's [`Engine`].
//!
//! gRPC handlers and peer connections send it [`Command`]s. It handles every
//! command waiting in its channel, then makes all of them durable with one
//! commit (group commit: one sled flush for many writes), answers the writes
//! that are now durable enough for their write concern, and sends what the
//! engine has for peers. The engine is synchronous and the flush blocks, so
//! this is a plain thread, not an async task.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concord_core::{
    Accepted, ClientWrite, CoreError, Engine, Outgoing, PeerMessage, ReadValue, WriteRef,
};
use concord_crdt::RegionId;
use concord_store::SledStore;
use tokio::sync::{oneshot, watch};

use crate::NodeError;

/// The engine as the node runs it.
pub type NodeEngine = Engine<SledStore>;

/// How many other regions must hold a write durably before it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needed {
    /// Durable here only.
    Local,
    /// Durable here and in this many other regions.
    Others(usize),
    /// Durable in every region the write's collection replicates to.
    All,
}

/// Where the engine thread answers a write: once when it is accepted (with
/// its identity), and once when it is as durable as asked (or refused).
pub struct WriteReply {
    /// The write's identity, as soon as it is accepted.
    pub accepted: oneshot::Sender<WriteRef>,
    /// The outcome.
    pub done: oneshot::Sender<Result<Durable, NodeError>>,
}

impl WriteReply {
    /// A reply pair and the receiving ends.
    pub fn new() -> (
        Self,
        oneshot::Receiver<WriteRef>,
        oneshot::Receiver<Result<Durable, NodeError>>,
    ) {
        let (accepted, a) = oneshot::channel();
        let (done, d) = oneshot::channel();
        (Self { accepted, done }, a, d)
    }
}

/// A write as durable as it was asked to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    /// The write.
    pub write: WriteRef,
    /// The other regions that hold it durably.
    pub peers: Vec<RegionId>,
}

/// What to do to the engine, sent to the engine thread.
pub enum Command {
    /// A client write.
    Write {
        /// The write.
        write: ClientWrite,
        /// How durable before answering.
        needed: Needed,
        /// The answers.
        reply: WriteReply,
    },
    /// Many client writes, checked first: all are made or none. The
    /// accepted reply carries the last one's identity; the others precede
    /// it with consecutive seqs.
    WriteMany {
        /// The writes.
        writes: Vec<ClientWrite>,
        /// How durable before answering.
        needed: Needed,
        /// The answers.
        reply: WriteReply,
    },
    /// Resolve a conflict-queue item.
    Resolve {
        /// The item.
        item: u64,
        /// The resolved value (`None` deletes).
        value: Option<Vec<u8>>,
        /// Refuse if the item changed after this queue position.
        expected_position: Option<u64>,
        /// How durable before answering.
        needed: Needed,
        /// The answers.
        reply: WriteReply,
    },
    /// A read, once `after` (if any) is applied here.
    Read {
        /// The entity's collection.
        collection: concord_core::Collection,
        /// The entity's key.
        key: Vec<u8>,
        /// Read-your-writes: wait for this write.
        after: Option<WriteRef>,
        /// The answer.
        reply: oneshot::Sender<Result<ReadValue, CoreError>>,
    },
    /// A connection to `peer` is up; messages for it go to `tx`.
    PeerUp {
        /// The peer.
        peer: RegionId,
        /// This connection's number (a newer one replaces an older one).
        conn: u64,
        /// Where to send the peer's messages.
        tx: tokio::sync::mpsc::UnboundedSender<PeerMessage>,
    },
    /// A message from `peer` on connection `conn`.
    PeerMessage {
        /// The peer.
        peer: RegionId,
        /// The connection.
        conn: u64,
        /// The message.
        message: PeerMessage,
    },
    /// Connection `conn` to `peer` is down.
    PeerDown {
        /// The peer.
        peer: RegionId,
        /// The connection.
        conn: u64,
    },
    /// Run `f` on the engine (queries, and operations with their own answer).
    Inspect(Box<dyn FnOnce(&mut NodeEngine) + Send>),
    /// Run `f` on the engine and send the messages it returns to peers.
    Act(Action),
    /// Flush and stop.
    Shutdown(oneshot::Sender<Result<(), CoreError>>),
}

/// An operation on the engine whose peer messages the thread sends.
pub type Action = Box<dyn FnOnce(&mut NodeEngine) -> Vec<Outgoing> + Send>;

/// A handle to the engine thread.
#[derive(Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Command>,
    changes: watch::Receiver<u64>,
    alive: watch::Receiver<bool>,
}

impl DriverHandle {
    /// Sends a command; `Err` once the engine thread has stopped.
    pub fn send(&self, command: Command) -> Result<(), crate::NodeError> {
        self.tx.send(command).map_err(|_| crate::NodeError::Stopped)
    }

    /// Runs `f` on the engine and returns its result.
    pub async fn inspect<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeEngine) -> T + Send + 'static,
    ) -> Result<T, crate::NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Inspect(Box::new(move |e| {
            let _ = reply.send(f(e));
        })))?;
        rx.await.map_err(|_| crate::NodeError::Stopped)
    }

    /// Runs `f` on the engine, sends the peer messages it returns, and
    /// returns its result (operations like a takeover).
    pub async fn act<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodeEngine) -> (T, Vec<Outgoing>) + Send + 'static,
    ) -> Result<T, crate::NodeError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Act(Box::new(move |e| {
            let (value, out) = f(e);
            let _ = reply.send(value);
            out
        })))?;
        rx.await.map_err(|_| crate::NodeError::Stopped)
    }

    /// Returns once the engine thread has stopped (shut down, or failed).
    pub async fn stopped(&self) {
        let mut alive = self.alive.clone();
        // An error means the sender is gone: the thread has ended.
        let _ = alive.wait_for(|a| !*a).await;
    }

    /// A counter that moves whenever the conflict queue changes (for watching).
    pub fn queue_changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// The driver's tunables.
#[derive(Clone, Debug)]
pub struct DriverSettings {
    /// How often the engine ticks (heartbeats, lag, held writes, checkpoints).
    pub tick_every: Duration,
    /// At most this many commands are handled between two commits.
    pub max_group: usize,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            tick_every: Duration::from_millis(50),
            max_group: 8192,
        }
    }
}

struct WriteWaiter {
    write: WriteRef,
    /// How many other regions must hold it.
    others: usize,
    reply: oneshot::Sender<Result<Durable, NodeError>>,
}

struct ReadWaiter {
    collection: concord_core::Collection,
    key: Vec<u8>,
    after: WriteRef,
    reply: oneshot::Sender<Result<ReadValue, CoreError>>,
}

struct Driver {
    engine: NodeEngine,
    rx: mpsc::Receiver<Command>,
    settings: DriverSettings,
    links: HashMap<RegionId, (u64, tokio::sync::mpsc::UnboundedSender<PeerMessage>)>,
    /// Writes accepted and not yet durable here.
    local: Vec<WriteWaiter>,
    /// Writes durable here that wait for other regions.
    remote: Vec<WriteWaiter>,
    reads: Vec<ReadWaiter>,
    changes: watch::Sender<u64>,
    /// Something changed since the last commit.
    dirty: bool,
    /// Acks arrived since remote waiters were last checked.
    acked: bool,
    applied_moved: bool,
    stop: Option<oneshot::Sender<Result<(), CoreError>>>,
    queue_count: u64,
    /// A storage failure met while handling a command: the thread stops.
    failed: Option<CoreError>,
    /// Cleared when the thread ends, however it ends.
    _alive: watch::Sender<bool>,
}

/// Starts the engine thread for `engine`.
pub fn spawn(
    engine: NodeEngine,
    settings: DriverSettings,
) -> Result<(DriverHandle, std::thread::JoinHandle<()>), crate::NodeError> {
    let (tx, rx) = mpsc::channel();
    let (changes, changes_rx) = watch::channel(0);
    let (alive, alive_rx) = watch::channel(true);
    let name = format!("concord-engine-{}", engine.region());
    let driver = Driver {
        engine,
        rx,
        settings,
        links: HashMap::new(),
        local: Vec::new(),
        remote: Vec::new(),
        reads: Vec::new(),
        changes,
        dirty: false,
        acked: false,
        applied_moved: false,
        stop: None,
        queue_count: 0,
        failed: None,
        _alive: alive,
    };
    let join = std::thread::Builder::new()
        .name(name)
        .spawn(move || driver.run())
        .map_err(|source| crate::NodeError::Io {
            path: "engine thread".into(),
            source,
        })?;
    Ok((
        DriverHandle {
            tx,
            changes: changes_rx,
            alive: alive_rx,
        },
        join,
    ))
}

impl Driver {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.settings.tick_every;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(cmd) => {
                    self.handle(cmd);
                    let mut n = 1;
                    while n < self.settings.max_group && self.stop.is_none() {
                        match self.rx.try_recv() {
                            Ok(cmd) => self.handle(cmd),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Some(e) = self.failed.take() {
                self.fail(e);
                return;
            }
            if let Err(e) = self.settle() {
                self.fail(e);
                return;
            }
            self.publish_queue_changes();
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.settings.tick_every;
                let before = self.engine.cursors();
                match self.engine.tick() {
                    Ok(out) => {
                        self.send(out);
                        // A tick can apply writes (held ones whose time came,
                        // a handoff's map move): commit and answer them.
                        if self.engine.cursors() != before {
                            self.dirty = true;
                            self.applied_moved = true;
                            if let Err(e) = self.settle() {
                                self.fail(e);
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        self.fail(e);
                        return;
                    }
                }
                self.local.retain(|w| !w.reply.is_closed());
                self.remote.retain(|w| !w.reply.is_closed());
                self.reads.retain(|r| !r.reply.is_closed());
            }
            if let Some(stop) = self.stop.take() {
                let result = self.engine.checkpoint().map(|_| ());
                if let Err(e) = &result {
                    tracing::error!(error = %e, "final checkpoint failed");
                }
                let _ = stop.send(result);
                return;
            }
        }
        if let Err(e) = self.engine.checkpoint() {
            tracing::error!(error = %e, "final checkpoint failed");
        }
    }

    /// The engine failed (a storage error): nothing more can be made durable.
    fn fail(&mut self, e: CoreError) {
        tracing::error!(error = %e, region = %self.engine.region(), "engine stopped");
        for w in self.local.drain(..).chain(self.remote.drain(..)) {
            let _ = w.reply.send(Err(NodeError::Stopped));
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Err(e));
        }
    }

    /// Commits what changed, answers what is now durable, sends what peers need.
    fn settle(&mut self) -> Result<(), CoreError> {
        if self.dirty {
            self.dirty = false;
            let report = self.engine.commit()?;
            self.send(report.outgoing);
            let durable = report.local_durable;
            let mut waiting = Vec::new();
            for w in self.local.drain(..) {
                if w.write.seq <= durable {
                    if w.others == 0 {
                        let _ = w.reply.send(Ok(Durable {
                            write: w.write,
                            peers: Vec::new(),
                        }));
                    } else {
                        self.remote.push(w);
                    }
                } else {
                    waiting.push(w);
                }
            }
            self.local = waiting;
            self.acked = true;
        }
        if self.acked && !self.remote.is_empty() {
            let engine = &self.engine;
            self.remote.retain_mut(|w| {
                let peers = engine.durable_at(w.write);
                if peers.len() >= w.others {
                    // A waiter is answered once; the dummy keeps `retain_mut` simple.
                    let (dummy, _) = oneshot::channel();
                    let reply = std::mem::replace(&mut w.reply, dummy);
                    let _ = reply.send(Ok(Durable {
                        write: w.write,
                        peers,
                    }));
                    false
                } else {
                    true
                }
            });
        }
        self.acked = false;
        if self.applied_moved && !self.reads.is_empty() {
            let mut waiting = Vec::new();
            for r in self.reads.drain(..) {
                if self.engine.has_applied(r.after) {
                    let _ = r.reply.send(self.engine.read(&r.collection, &r.key));
                } else {
                    waiting.push(r);
                }
            }
            self.reads = waiting;
        }
        self.applied_moved = false;
        let out = self.engine.poll()?;
        self.send(out);
        Ok(())
    }

    fn send(&mut self, out: Vec<Outgoing>) {
        for o in out {
            if let Some((_, tx)) = self.links.get(&o.to)
                && tx.send(o.message).is_err()
            {
                self.links.remove(&o.to);
            }
        }
    }

    /// How many other regions must hold a write of `collection` for `needed`.
    fn others(
        &self,
        collection: &concord_core::Collection,
        needed: Needed,
    ) -> Result<usize, NodeError> {
        let possible = match self.engine.collection(collection) {
            Some(c) => self
                .engine
                .config()
                .peers
                .iter()
                .filter(|p| **p != self.engine.region() && c.replication.allows(**p))
                .count(),
            None => 0,
        };
        match needed {
            Needed::Local => Ok(0),
            Needed::All => Ok(possible),
            Needed::Others(n) if n <= possible => Ok(n),
            Needed::Others(n) => Err(NodeError::Concern {
                collection: collection.to_string(),
                wanted: n,
                possible,
            }),
        }
    }

    fn write_many(&mut self, writes: Vec<ClientWrite>, needed: Needed, reply: WriteReply) {
        let mut others = 0;
        let mut last_collection: Option<&concord_core::Collection> = None;
        for (i, w) in writes.iter().enumerate() {
            let checked = self
                .engine
                .check(w)
                .and_then(|()| self.engine.check_sibling_limit(w))
                .map_err(|e| NodeError::Item {
                    index: i,
                    source: Box::new(NodeError::Core(e)),
                });
            let checked = checked.and_then(|()| {
                if last_collection == Some(&w.collection) {
                    return Ok(());
                }
                last_collection = Some(&w.collection);
                self.others(&w.collection, needed)
                    .map(|n| others = others.max(n))
                    .map_err(|e| NodeError::Item {
                        index: i,
                        source: Box::new(e),
                    })
            });
            if let Err(e) = checked {
                let _ = reply.done.send(Err(e));
                return;
            }
        }
        let mut last = None;
        let mut rest = writes.into_iter();
        while !rest.as_slice().is_empty() {
            // The next writes' entities, read into the cache together.
            let ahead = rest.as_slice();
            let n = ahead.len().min(NodeEngine::WARM_AHEAD);
            self.engine.warm(&ahead[..n]);
            for w in rest.by_ref().take(n) {
                match self.engine.write(w) {
                    Ok(a) => last = Some(a),
                    Err(e) => {
                        // Checked above: only a failure of the engine itself
                        // (a clock beyond its drift bound, a counter overflow).
                        // The writes before it stand and are committed.
                        if let Some(a) = last {
                            self.dirty = true;
                            let _ = reply.accepted.send(a.write);
                        }
                        let _ = reply.done.send(Err(NodeError::Core(e)));
                        return;
                    }
                }
            }
        }
        match last {
            Some(a) => self.accepted(Ok(a), others, reply),
            None => {
                let _ = reply.done.send(Err(NodeError::Malformed {
                    field: "writes".into(),
                    reason: "no writes".into(),
                }));
            }
        }
    }

    fn accepted(&mut self, r: Result<Accepted, CoreError>, others: usize, reply: WriteReply) {
        match r {
            Ok(a) => {
                self.dirty = true;
                self.applied_moved = true;
                let _ = reply.accepted.send(a.write);
                self.local.push(WriteWaiter {
                    write: a.write,
                    others,
                    reply: reply.done,
                });
            }
            Err(e) => {
                let _ = reply.done.send(Err(NodeError::Core(e)));
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Write {
                write,
                needed,
                reply,
            } => match self.others(&write.collection, needed) {
                Ok(others) => {
                    let r = self
                        .engine
                        .check_sibling_limit(&write)
                        .and_then(|()| self.engine.write(write));
                    self.accepted(r, others, reply);
                }
                Err(e) => {
                    let _ = reply.done.send(Err(e));
                }
            },
            Command::WriteMany {
                writes,
                needed,
                reply,
            } => {
                self.write_many(writes, needed, reply);
            }
            Command::Resolve {
                item,
                value,
                expected_position,
                needed,
                reply,
            } => {
                if let (Some(want), Some(it)) = (expected_position, self.engine.conflict(item))
                    && it.position != want
                {
                    let _ = reply.done.send(Err(NodeError::Status(tonic::Status::aborted(format!(
                        "conflict item {item} changed after position {want} (now {}): read it again and decide again",
                        it.position
                    )))));
                    return;
                }
                let collection = self
                    .engine
                    .conflict(item)
                    .map(|i| i.entity.collection.clone());
                let others = match collection {
                    Some(c) => self.others(&c, needed),
                    None => Ok(0),
                };
                match others {
                    Ok(others) => {
                        let r = self.engine.resolve(item, value);
                        self.accepted(r, others, reply);
                    }
                    Err(e) => {
                        let _ = reply.done.send(Err(e));
                    }
                }
            }
            Command::Read {
                collection,
                key,
                after,
                reply,
            } => match after {
                Some(after) if !self.engine.has_applied(after) => self.reads.push(ReadWaiter {
                    collection,
                    key,
                    after,
                    reply,
                }),
                _ => {
                    let _ = reply.send(self.engine.read(&collection, &key));
                }
            },
            Command::PeerUp { peer, conn, tx } => match self.engine.connect(peer) {
                Ok(out) => {
                    tracing::info!(%peer, conn, "peer connected");
                    self.links.insert(peer, (conn, tx));
                    self.send(out);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "peer refused"),
            },
            Command::PeerMessage {
                peer,
                conn,
                message,
            } => {
                if self.links.get(&peer).map(|(c, _)| *c) != Some(conn) {
                    return; // a replaced connection
                }
                let is_batch = matches!(
                    message,
                    PeerMessage::Batch(_) | PeerMessage::Snapshot { .. }
                );
                let is_ack = matches!(message, PeerMessage::Ack { .. });
                match self.engine.receive(peer, message) {
                    Ok(out) => {
                        self.send(out);
                        if is_batch {
                            self.dirty = true;
                            self.applied_moved = true;
                        }
                        if is_ack {
                            self.acked = true;
                        }
                    }
                    Err(e @ (CoreError::PeerViolation { .. } | CoreError::UnknownRegion(_))) => {
                        tracing::warn!(%peer, error = %e, "peer violated the protocol: closing its connection");
                        self.links.remove(&peer);
                        let _ = self.engine.disconnect(peer);
                    }
                    Err(e @ (CoreError::Backend(_) | CoreError::LogGap { .. })) => {
                        // The store failed under us: nothing more can be made durable.
                        self.failed = Some(e);
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "peer message refused");
                    }
                }
            }
            Command::PeerDown { peer, conn } => {
                if self.links.get(&peer).map(|(c, _)| *c) == Some(conn) {
                    tracing::info!(%peer, conn, "peer disconnected");
                    self.links.remove(&peer);
                    let _ = self.engine.disconnect(peer);
                }
            }
            Command::Inspect(f) => {
                let own = self.engine.region();
                let before = self.engine.cursor(own);
                f(&mut self.engine);
                // An inspection may have written (a takeover, a handoff).
                if self.engine.cursor(own) != before {
                    self.dirty = true;
                    self.applied_moved = true;
                }
            }
            Command::Act(f) => {
                let own = self.engine.region();
                let before = self.engine.cursor(own);
                let out = f(&mut self.engine);
                self.send(out);
                if self.engine.cursor(own) != before {
                    self.dirty = true;
                    self.applied_moved = true;
                }
            }
            Command::Shutdown(reply) => self.stop = Some(reply),
        }
    }

    /// Tells conflict watchers when the queue changed.
    fn publish_queue_changes(&mut self) {
        let s = self.engine.stats();
        let count = s.conflicts_opened + s.conflicts_closed;
        if count != self.queue_count {
            self.queue_count = count;
            self.changes.send_modify(|n| *n += 1);
        }
    }
}
