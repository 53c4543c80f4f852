//! A Rust client for a node's client service.
//!
//! ```no_run
//! # async fn example() -> Result<(), concord_node::NodeError> {
//! use concord_node::client::{Client, Read};
//!
//! let mut client = Client::connect("http://127.0.0.1:7101").await?;
//! let token = client.put("profiles", b"alice", b"{\"name\":\"Alice\"}").await?;
//! // Read your write, here or in any other region:
//! let read = client.get_after("profiles", b"alice", token).await?;
//! assert!(matches!(read, Read::Value { .. }));
//! # Ok(()) }
//! ```

use std::time::Duration;

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

/// A connection to one node's client service.
#[derive(Clone, Debug)]
pub struct Client {
    inner: pb::concord_client::ConcordClient<Channel>,
    concern: Option<pb::WriteConcern>,
}

impl Client {
    /// Connects to `address` (e.g. `http://127.0.0.1:7101`).
    pub async fn connect(address: &str) -> Result<Self, NodeError> {
        let addr = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let channel = tonic::transport::Endpoint::from_shared(addr.clone())
            .map_err(|source| NodeError::Connect {
                addr: addr.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .connect()
            .await
            .map_err(|source| NodeError::Connect { addr, source })?;
        Ok(Self {
            inner: pb::concord_client::ConcordClient::new(channel),
            concern: None,
        })
    }

    /// Uses `concern` for this client's writes (none: the node's default).
    pub fn with_concern(mut self, concern: Option<pb::WriteConcern>) -> Self {
        self.concern = concern;
        self
    }

    /// The generated client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut pb::concord_client::ConcordClient<Channel> {
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
            })
            .await?;
        token(r.into_inner())
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
