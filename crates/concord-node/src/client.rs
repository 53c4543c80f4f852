//! A Rust client for a node's client service.
//!
//! ```no_run
//! # async fn example() -> Result<(), concord_node::NodeError> {
//! use concord_node::client::{Client, ClientOptions, Read};
//!
//! let options = ClientOptions::default()
//!     .ca_file("certs/ca.pem".as_ref())?  // TLS: trust the deployment's CA
//!     .token("my-token");                 // sent as `authorization: Bearer ...`
//! let mut client = Client::connect_with("https://127.0.0.1:7101", &options).await?;
//! let token = client.put("profiles", b"alice", b"{\"name\":\"Alice\"}").await?;
//! // Read your write, here or in any other region:
//! let read = client.get_after("profiles", b"alice", token).await?;
//! assert!(matches!(read, Read::Value { .. }));
//! # Ok(()) }
//! ```

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::{NodeError, pb};

/// What a read returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// Never written, or deleted.
    Missing,
    /// An LWW value.
    Value {
        /// The value.
        value: Vec<u8>,
        /// The version's details.
        version: pb::Version,
    },
    /// Concurrent versions (`mv`, `queue`).
    Siblings {
        /// Every live version.
        versions: Vec<pb::Version>,
        /// Write back with this context to replace them.
        context: pb::VersionVector,
    },
    /// A counter's value.
    Counter(i64),
}

impl Read {
    fn from_pb(r: pb::GetResponse) -> Result<Self, NodeError> {
        use pb::get_response::Result as R;
        Ok(match r.result {
            None | Some(R::Missing(_)) => Self::Missing,
            Some(R::Value(v)) => Self::Value {
                value: v.value.clone().unwrap_or_default(),
                version: v,
            },
            Some(R::Siblings(s)) => Self::Siblings {
                versions: s.versions,
                context: s.context.unwrap_or_default(),
            },
            Some(R::Counter(n)) => Self::Counter(n),
        })
    }
}

/// How a client connects: TLS trust and its token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// The CA certificate(s) to trust (PEM). With one, the connection is
    /// TLS whatever the address's scheme; without, plaintext.
    pub ca: Option<Vec<u8>>,
    /// The name to verify the node's certificate for (default: the
    /// address's host).
    pub domain: Option<String>,
    /// The bearer token sent with every call.
    pub token: Option<String>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("domain", &self.domain)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

impl ClientOptions {
    /// Trusts the CA in the PEM file `path`.
    pub fn ca_file(mut self, path: &std::path::Path) -> Result<Self, NodeError> {
        let pem = std::fs::read(path).map_err(|source| NodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        crate::tls::pem_certs(&pem, "ca")?;
        self.ca = Some(pem);
        Ok(self)
    }

    /// Trusts the CA `pem`.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// Sends `token`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Verifies the node's certificate for `domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The process's local PKI ([`crate::certs::local`]: the demo's, the
    /// tests'), if it was made: its CA and its admin token.
    pub fn local() -> Option<Self> {
        let pki = crate::certs::local_if_made()?;
        Some(Self {
            ca: Some(pki.ca_pem().as_bytes().to_vec()),
            domain: None,
            token: Some(pki.admin_token().to_owned()),
        })
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// The interceptor of `token` (none: calls go without one).
    pub fn new(token: Option<&str>) -> Result<Self, NodeError> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| NodeError::Malformed {
                        field: "token".into(),
                        reason: "not printable ASCII".into(),
                    })
            })
            .transpose()
            .map(Self)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request
                .metadata_mut()
                .insert(crate::auth::AUTHORIZATION, v.clone());
        }
        Ok(request)
    }
}

/// The channel of a client: TLS or plaintext, with its token.
pub type Transport = InterceptedService<Channel, BearerToken>;

/// The generated client over [`Transport`].
pub type RawClient = pb::concord_client::ConcordClient<Transport>;

/// A channel to `address` with `options`' TLS (no token): for the other
/// services (health, reflection) and raw gRPC.
pub async fn channel(address: &str, options: &ClientOptions) -> Result<Channel, NodeError> {
    let addr = if options.ca.is_some() {
        crate::tls::https(address)
    } else if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let connect_error = |source| NodeError::Connect {
        addr: addr.clone(),
        source,
    };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(addr.clone()).map_err(connect_error)?;
    if let Some(ca) = &options.ca {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca));
        if let Some(d) = &options.domain {
            tls = tls.domain_name(d.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(connect_error)?;
    }
    endpoint
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .connect()
        .await
        .map_err(|source| NodeError::Connect { addr, source })
}

/// A connection to one node's client service.
#[derive(Clone, Debug)]
pub struct Client {
    inner: RawClient,
    concern: Option<pb::WriteConcern>,
}

impl Client {
    /// Connects to `address` (e.g. `http://127.0.0.1:7101`) with the
    /// process's local PKI if there is one ([`ClientOptions::local`]: the
    /// demo's and the tests' nodes), else plaintext without a token. Use
    /// [`Client::connect_with`] to choose.
    pub async fn connect(address: &str) -> Result<Self, NodeError> {
        Self::connect_with(address, &ClientOptions::local().unwrap_or_default()).await
    }

    /// Connects to `address` with `options` (TLS trust, token).
    pub async fn connect_with(address: &str, options: &ClientOptions) -> Result<Self, NodeError> {
        let channel = channel(address, options).await?;
        let token = BearerToken::new(options.token.as_deref())?;
        Ok(Self {
            inner: pb::concord_client::ConcordClient::with_interceptor(channel, token),
            concern: None,
        })
    }

    /// Uses `concern` for this client's writes (none: the node's default).
    pub fn with_concern(mut self, concern: Option<pb::WriteConcern>) -> Self {
        self.concern = concern;
        self
    }

    /// The generated client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut RawClient {
        &mut self.inner
    }

    /// Sets `key` to `value`; returns the write's causal token.
    pub async fn put(
        &mut self,
        collection: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<pb::WriteRef, NodeError> {
        self.put_with(collection, key, value, None).await
    }

    /// Sets `key` to `value`, replacing the versions `context` covers.
    pub async fn put_with(
        &mut self,
        collection: &str,
        key: &[u8],
        value: &[u8],
        context: Option<pb::VersionVector>,
    ) -> Result<pb::WriteRef, NodeError> {
        let r = self
            .inner
            .put(pb::PutRequest {
                collection: collection.to_owned(),
                key: key.to_vec(),
                value: value.to_vec(),
                context,
                concern: self.concern,
            })
            .await?;
        token(r.into_inner())
    }

    /// Deletes `key`.
    pub async fn delete(
        &mut self,
        collection: &str,
        key: &[u8],
    ) -> Result<pb::WriteRef, NodeError> {
        let r = self
            .inner
            .delete(pb::DeleteRequest {
                collection: collection.to_owned(),
                key: key.to_vec(),
                context: None,
                concern: self.concern,
            })
            .await?;
        token(r.into_inner())
    }

    /// Adds `delta` to a counter.
    pub async fn increment(
        &mut self,
        collection: &str,
        key: &[u8],
        delta: i64,
    ) -> Result<pb::WriteRef, NodeError> {
        let r = self
            .inner
            .increment(pb::IncrementRequest {
                collection: collection.to_owned(),
                key: key.to_vec(),
                delta,
                concern: self.concern,
            })
            .await?;
        token(r.into_inner())
    }

    /// Reads `key`.
    pub async fn get(&mut self, collection: &str, key: &[u8]) -> Result<Read, NodeError> {
        self.get_request(collection, key, None).await
    }

    /// Reads `key` once the write `after` is applied on this node.
    pub async fn get_after(
        &mut self,
        collection: &str,
        key: &[u8],
        after: pb::WriteRef,
    ) -> Result<Read, NodeError> {
        self.get_request(collection, key, Some(after)).await
    }

    async fn get_request(
        &mut self,
        collection: &str,
        key: &[u8],
        after: Option<pb::WriteRef>,
    ) -> Result<Read, NodeError> {
        let r = self
            .inner
            .get(pb::GetRequest {
                collection: collection.to_owned(),
                key: key.to_vec(),
                after,
                wait_ms: 0,
            })
            .await?;
        Read::from_pb(r.into_inner())
    }

    /// Open conflict-queue items (closed ones too if `all`).
    pub async fn conflicts(&mut self, all: bool) -> Result<Vec<pb::ConflictItem>, NodeError> {
        Ok(self
            .inner
            .list_conflicts(pb::ListConflictsRequest {
                collection: String::new(),
                include_closed: all,
                limit: 0,
            })
            .await?
            .into_inner()
            .items)
    }

    /// Resolves conflict item `id` with `value` (`None` deletes).
    pub async fn resolve(
        &mut self,
        id: u64,
        value: Option<Vec<u8>>,
    ) -> Result<pb::WriteRef, NodeError> {
        let r = self
            .inner
            .resolve_conflict(pb::ResolveConflictRequest {
                id,
                value,
                concern: self.concern,
                expected_position: None,
            })
            .await?;
        token(r.into_inner())
    }

    /// Resolves `item` with `value` (`None` deletes), only if the item has
    /// not changed since it was read: otherwise the call fails with
    /// `ABORTED` and writes nothing.
    pub async fn resolve_item(
        &mut self,
        item: &pb::ConflictItem,
        value: Option<Vec<u8>>,
    ) -> Result<pb::WriteRef, NodeError> {
        let r = self
            .inner
            .resolve_conflict(pb::ResolveConflictRequest {
                id: item.id,
                value,
                concern: self.concern,
                expected_position: Some(item.position),
            })
            .await?;
        token(r.into_inner())
    }

    /// The whole loser log of `collection` (empty: every collection the
    /// client may read), oldest first, fetched page by page.
    pub async fn losers(&mut self, collection: &str) -> Result<Vec<pb::LoserRecord>, NodeError> {
        let mut out: Vec<pb::LoserRecord> = Vec::new();
        loop {
            let page = self
                .inner
                .list_losers(pb::ListLosersRequest {
                    collection: collection.to_owned(),
                    key: Vec::new(),
                    after_id: out.last().map(|l| l.id),
                    limit: 0,
                })
                .await?
                .into_inner();
            let more = page.more && !page.losers.is_empty();
            out.extend(page.losers);
            if !more {
                return Ok(out);
            }
        }
    }

    /// The node's status.
    pub async fn status(&mut self) -> Result<pb::StatusResponse, NodeError> {
        Ok(self.inner.status(pb::StatusRequest {}).await?.into_inner())
    }
}

fn token(r: pb::WriteResponse) -> Result<pb::WriteRef, NodeError> {
    r.token.ok_or_else(|| NodeError::Malformed {
        field: "WriteResponse.token".into(),
        reason: "missing".into(),
    })
}
