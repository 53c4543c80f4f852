//! Collection names and entity keys.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The longest collection name accepted, in bytes.
pub const MAX_COLLECTION_LEN: usize = 128;

/// A collection name: 1 to 128 bytes of `[A-Za-z0-9_.-]`.
///
/// Cheap to clone (shared string).
///
/// ```
/// use concord_core::Collection;
/// assert!(Collection::new("profiles").is_ok());
/// assert!(Collection::new("").is_err());
/// assert!(Collection::new("has space").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Collection(Arc<str>);

/// Serialized as its name, a string, borrowed (`serde(into = "String")`
/// would copy the name into a new `String` for every record written).
impl Serialize for Collection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Collection {
    /// Validates and wraps a collection name.
    pub fn new(name: &str) -> Result<Self, CoreError> {
        let invalid = |reason| CoreError::InvalidCollection {
            name: name.chars().take(MAX_COLLECTION_LEN + 8).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_COLLECTION_LEN {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(invalid("only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same name in an allocation of its own, not shared with `self`'s
    /// clones: a clone shares one reference count, and one that two threads
    /// keep raising and lowering is a cache line moving between them.
    pub(crate) fn unshared(&self) -> Self {
        Self(Arc::from(self.as_str()))
    }
}

impl TryFrom<String> for Collection {
    type Error = CoreError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(&name)
    }
}

impl From<Collection> for String {
    fn from(c: Collection) -> Self {
        c.0.to_string()
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// One entity: a key within a collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityKey {
    /// The collection.
    pub collection: Collection,
    /// The key, as bytes.
    #[serde(with = "crate::serde_bytes")]
    pub key: Vec<u8>,
}

impl EntityKey {
    /// The entity `key` of `collection`.
    pub fn new(collection: Collection, key: impl Into<Vec<u8>>) -> Self {
        Self {
            collection,
            key: key.into(),
        }
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.key) {
            Ok(k) => write!(f, "{}/{}", self.collection, k),
            Err(_) => {
                write!(f, "{}/0x", self.collection)?;
                self.key.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}
