//! Client authentication and permissions.
//!
//! A client sends `authorization: Bearer <token>`. The configuration lists
//! the clients (`[[clients]]`) with the sha256 of their token (hex; `concord
//! token hash` prints it, `concord token new` makes a token), the
//! collections each may read and write (`"*"`: all), and whether it is an
//! admin (Takeover, Handoff, ResolveConflict, and policy changes).
//!
//! - With clients configured, every call of the client service needs a
//!   known token: none or an unknown one is `UNAUTHENTICATED`; a call the
//!   client has no permission for is `PERMISSION_DENIED`.
//! - With none configured, the client service is open. That is allowed only
//!   with `tls.insecure = true` (see [`crate::config`]).
//! - A write forwarded by a peer to its key's owner is accepted from a
//!   caller whose verified TLS certificate names a configured peer region
//!   (the peer checked the client's permission); without TLS, the peer
//!   passes the client's token along.
//!
//! ```
//! use concord_node::auth::hash_token;
//! assert_eq!(
//!     hash_token("secret"),
//!     "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
//! );
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::NodeError;

/// The metadata key of the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// The sha256 of `token`, as 64 lowercase hex digits: what `[[clients]]`
/// stores as `token_sha256`.
pub fn hash_token(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A new random token: 32 random bytes as 64 hex digits.
pub fn generate_token() -> Result<String, NodeError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| NodeError::CertGen {
            what: "a token".into(),
            reason: "the system's random source failed".into(),
        })?;
    Ok(hex(&bytes))
}

/// One client of the configuration (TOML `[[clients]]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientSpec {
    /// The client's name (in logs and refusals).
    pub name: String,
    /// The sha256 of its token, 64 lowercase hex digits.
    pub token_sha256: String,
    /// The collections it may read (`"*"`: every one).
    pub read: Vec<String>,
    /// The collections it may write (`"*"`: every one).
    pub write: Vec<String>,
    /// Whether it may take over, hand off, resolve conflicts and change
    /// policies.
    pub admin: bool,
}

impl ClientSpec {
    /// An admin client that may read and write everything, with the token
    /// whose sha256 is `token_sha256`.
    pub fn admin(name: &str, token_sha256: String) -> Self {
        Self {
            name: name.to_owned(),
            token_sha256,
            read: vec!["*".into()],
            write: vec!["*".into()],
            admin: true,
        }
    }
}

/// Collections a client may touch.
#[derive(Clone, Debug)]
enum Access {
    All,
    Some(HashSet<String>),
}

impl Access {
    fn of(list: &[String]) -> Self {
        if list.iter().any(|c| c == "*") {
            Self::All
        } else {
            Self::Some(list.iter().cloned().collect())
        }
    }

    fn allows(&self, collection: &str) -> bool {
        match self {
            Self::All => true,
            Self::Some(set) => set.contains(collection),
        }
    }
}

/// A configured client, as the node checks it.
#[derive(Debug)]
pub struct Grant {
    name: String,
    hash: [u8; 32],
    read: Access,
    write: Access,
    admin: bool,
}

impl Grant {
    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Principal {
    /// Anyone: no clients are configured (insecure, open setup).
    Open,
    /// A configured client.
    Client(Arc<Grant>),
    /// A peer region forwarding a write to its key's owner (verified by
    /// its certificate).
    Peer(String),
}

impl Principal {
    /// The key its concurrency is counted under.
    pub fn key(&self) -> String {
        match self {
            Self::Open => "(open)".to_owned(),
            Self::Client(g) => format!("client {}", g.name),
            Self::Peer(r) => format!("peer {r}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Open => "an anonymous client".to_owned(),
            Self::Client(g) => format!("client {:?}", g.name),
            Self::Peer(r) => format!("peer {r}"),
        }
    }

    /// OK if it may read `collection`.
    pub fn can_read(&self, collection: &str) -> Result<(), Status> {
        match self {
            Self::Open => Ok(()),
            Self::Client(g) if g.read.allows(collection) => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "{} may not read collection {collection:?}",
                self.describe()
            ))),
        }
    }

    /// Whether it may read `collection` (for filtering lists).
    pub fn reads(&self, collection: &str) -> bool {
        self.can_read(collection).is_ok()
    }

    /// OK if it may write `collection`; a peer may write any collection
    /// only with a forwarded write.
    pub fn can_write(&self, collection: &str, forwarded: bool) -> Result<(), Status> {
        match self {
            Self::Open => Ok(()),
            Self::Client(g) if g.write.allows(collection) => Ok(()),
            Self::Peer(_) if forwarded => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "{} may not write collection {collection:?}",
                self.describe()
            ))),
        }
    }

    /// OK if it is an admin (or access is open); `what` names the call.
    pub fn can_admin(&self, what: &str) -> Result<(), Status> {
        match self {
            Self::Open => Ok(()),
            Self::Client(g) if g.admin => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "{what} needs the admin role; {} is not an admin",
                self.describe()
            ))),
        }
    }
}

/// The node's client table.
#[derive(Debug, Default)]
pub struct Auth {
    clients: Vec<Arc<Grant>>,
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks a `token_sha256` setting: 64 hex digits.
pub fn check_hash(s: &str) -> Result<(), String> {
    if unhex(s).is_some() {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a sha256 (64 hex digits): `concord token hash` prints one"
        ))
    }
}

impl Auth {
    /// The table of `clients` (already validated by the config).
    pub fn new(clients: &[ClientSpec]) -> Self {
        Self {
            clients: clients
                .iter()
                .filter_map(|c| {
                    Some(Arc::new(Grant {
                        name: c.name.clone(),
                        hash: unhex(&c.token_sha256.to_ascii_lowercase())?,
                        read: Access::of(&c.read),
                        write: Access::of(&c.write),
                        admin: c.admin,
                    }))
                })
                .collect(),
        }
    }

    /// Whether tokens are checked (any client is configured).
    pub fn enabled(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The client whose token `metadata` carries. `peer` is the region a
    /// verified TLS client certificate names, if any, and `forwarded`
    /// whether the call is a write forwarded to its owner: such a call
    /// from a configured peer is the peer's.
    pub fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer: Option<String>,
        forwarded: bool,
    ) -> Result<Principal, Status> {
        if forwarded && let Some(region) = peer {
            return Ok(Principal::Peer(region));
        }
        if !self.enabled() {
            return Ok(Principal::Open);
        }
        let Some(value) = metadata.get(AUTHORIZATION) else {
            return Err(Status::unauthenticated(
                "no token: send the metadata `authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated("the authorization metadata is not `Bearer <token>`")
            })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        // Look at every entry, so the time taken does not tell which matched.
        let mut found = None;
        for g in &self.clients {
            if ring_eq(&g.hash, digest.as_ref()) {
                found = Some(g.clone());
            }
        }
        found
            .map(Principal::Client)
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
