//! Limits on what a client or a peer may send, and the count of every
//! request refused for security or for a limit.
//!
//! The limits (TOML table `[limits]`, with `[tuning]`'s size limits):
//!
//! | limit | where | answer |
//! | --- | --- | --- |
//! | `tuning.max_message_bytes` | any gRPC message | `RESOURCE_EXHAUSTED` |
//! | `tuning.max_key_bytes`, `tuning.max_value_bytes` | each write | `INVALID_ARGUMENT` |
//! | `limits.max_write_many` | items of one `WriteMany` | `INVALID_ARGUMENT` |
//! | `limits.max_peer_batch` | writes of one batch from a peer | `INVALID_ARGUMENT`, stream closed |
//! | `limits.max_siblings` | ceiling of every collection's `max_siblings` (past a collection's cap the engine queues the entity) | config error |
//! | `limits.max_concurrent_per_client` | calls in progress per client (per token) | `RESOURCE_EXHAUSTED` |
//! | `limits.max_concurrent_per_peer` | peer-service calls in progress per region | `RESOURCE_EXHAUSTED` |
//!
//! Every refusal is counted in [`Rejections`], which `Status` reports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};

use crate::pb;

/// Limits beyond `[tuning]`'s sizes (TOML table `[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most writes in one `WriteMany` (default 1000).
    pub max_write_many: usize,
    /// Most writes in one batch from a peer (default 10000; at least
    /// `tuning.max_batch_writes`, what this node sends).
    pub max_peer_batch: usize,
    /// Ceiling of every collection's `max_siblings` (default 1024).
    pub max_siblings: u32,
    /// Client calls in progress at once per client, by token (default
    /// 256; a watch counts while it is open).
    pub max_concurrent_per_client: usize,
    /// Peer-service calls in progress at once per region (default 16).
    pub max_concurrent_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_write_many: 1000,
            max_peer_batch: 10_000,
            max_siblings: 1024,
            max_concurrent_per_client: 256,
            max_concurrent_per_peer: 16,
        }
    }
}

/// Counts of refused requests, by kind (cheap to share).
#[derive(Debug, Default)]
pub struct Rejections {
    unauthenticated: AtomicU64,
    permission_denied: AtomicU64,
    invalid_argument: AtomicU64,
    resource_exhausted: AtomicU64,
    tls_handshakes: AtomicU64,
    peers: AtomicU64,
}

impl Rejections {
    /// Counts `status` if it is a refusal (UNAUTHENTICATED,
    /// PERMISSION_DENIED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED), and
    /// returns it.
    pub fn count(&self, status: Status) -> Status {
        let counter = match status.code() {
            Code::Unauthenticated => &self.unauthenticated,
            Code::PermissionDenied => &self.permission_denied,
            Code::InvalidArgument => &self.invalid_argument,
            Code::ResourceExhausted => &self.resource_exhausted,
            _ => return status,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        status
    }

    /// Counts a refused peer stream (besides its status's count).
    pub fn peer(&self) {
        self.peers.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed or timed-out TLS handshake.
    pub fn tls_handshake(&self) {
        self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, for `Status`.
    pub fn to_pb(&self) -> pb::Rejections {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        pb::Rejections {
            unauthenticated: get(&self.unauthenticated),
            permission_denied: get(&self.permission_denied),
            invalid_argument: get(&self.invalid_argument),
            resource_exhausted: get(&self.resource_exhausted),
            tls_handshakes: get(&self.tls_handshakes),
            peer_streams: get(&self.peers),
        }
    }
}

/// Calls in progress per key (a client's name, a region), each bounded.
#[derive(Debug)]
pub struct Gate {
    per_key: usize,
    what: &'static str,
    keys: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Gate {
    /// A gate allowing `per_key` calls at once per key; `what` names the
    /// limit in refusals (e.g. `limits.max_concurrent_per_client`).
    pub fn new(per_key: usize, what: &'static str) -> Self {
        Self {
            per_key: per_key.max(1),
            what,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// A permit for one more call of `key`, held until dropped;
    /// RESOURCE_EXHAUSTED if `key` has its limit of calls in progress.
    pub fn enter(&self, key: &str) -> Result<OwnedSemaphorePermit, Status> {
        let semaphore = {
            let mut keys = self
                .keys
                .lock()
                .map_err(|_| Status::internal("the concurrency gate's lock is poisoned"))?;
            keys.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_key)))
                .clone()
        };
        semaphore.try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{key} has {} calls in progress, the limit ({})",
                self.per_key, self.what
            ))
        })
    }
}

/// A tower layer over the gRPC server: a request whose message is over
/// `tuning.max_message_bytes` (tonic answers OUT_OF_RANGE) is answered
/// RESOURCE_EXHAUSTED instead, and counted.
#[derive(Clone, Debug)]
pub struct TooLargeLayer {
    rejections: Arc<Rejections>,
}

impl TooLargeLayer {
    /// A layer counting in `rejections`.
    pub fn new(rejections: Arc<Rejections>) -> Self {
        Self { rejections }
    }
}

impl<S> tower_layer::Layer<S> for TooLargeLayer {
    type Service = TooLarge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TooLarge {
            inner,
            rejections: self.rejections.clone(),
        }
    }
}

/// The service of [`TooLargeLayer`].
#[derive(Clone, Debug)]
pub struct TooLarge<S> {
    inner: S,
    rejections: Arc<Rejections>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tonic::codegen::Service<tonic::codegen::http::Request<B>> for TooLarge<S>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<R>,
        >,
    S::Future: Send + 'static,
{
    type Response = tonic::codegen::http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        let rejections = self.rejections.clone();
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let out_of_range = headers
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"11");
            let too_large = out_of_range
                && headers.get("grpc-message").is_some_and(|v| {
                    let m = String::from_utf8_lossy(v.as_bytes());
                    m.contains("too large") || m.contains("too%20large")
                });
            if too_large {
                headers.insert(
                    "grpc-status",
                    tonic::codegen::http::HeaderValue::from_static("8"),
                );
                rejections.count(Status::resource_exhausted(""));
            }
            Ok(response)
        })
    }
}
