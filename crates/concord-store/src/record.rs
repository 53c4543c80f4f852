//! Encoding and decoding stored records, and the errors of doing so.

use std::path::Path;

use concord_core::CoreError;
use concord_crdt::{CrdtError, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A sled failure, as the engine sees it.
pub(crate) fn backend(e: sled::Error) -> CoreError {
    CoreError::Backend(format!("sled: {e}"))
}

/// Where a record lies: its tree and its key, in hex.
pub(crate) fn location(tree: &str, key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("tree {tree:?}, key 0x{hex}")
}

/// A record that decoded but makes no sense where it lies (a key of the
/// wrong shape, a value that disagrees with its key).
pub(crate) fn corrupt(what: &'static str, tree: &str, key: &[u8], reason: String) -> CoreError {
    corrupt_at(what, location(tree, key), reason)
}

/// A record at `location` (as [`location`] and more, e.g. an entry within
/// the record) that makes no sense there.
pub(crate) fn corrupt_at(what: &'static str, location: String, reason: String) -> CoreError {
    CoreError::CorruptRecord {
        what,
        location,
        source: CrdtError::Malformed {
            source: Box::new(bincode::error::DecodeError::OtherString(reason)),
        },
    }
}

/// Encodes a record, refusing one too large for [`codec::decode`] to read back.
pub(crate) fn encode<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, CoreError> {
    within_limit(what, codec::encode(value).map_err(encoding_failed(what))?)
}

/// The error for a `what` record that would not encode.
pub(crate) fn encoding_failed(what: &'static str) -> impl Fn(CrdtError) -> CoreError {
    move |e| CoreError::Backend(format!("encoding a {what}: {e}"))
}

/// `bytes`, an encoded `what` record, unless it is too large for
/// [`codec::decode`] to read back.
pub(crate) fn within_limit(what: &'static str, bytes: Vec<u8>) -> Result<Vec<u8>, CoreError> {
    if bytes.len() > codec::MAX_RECORD_BYTES {
        return Err(CoreError::TooLarge {
            what,
            len: bytes.len(),
            max: codec::MAX_RECORD_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes the record at `key` of `tree`; any failure is a
/// [`CoreError::CorruptRecord`] that names both.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, CoreError> {
    decode_at(what, bytes, || location(tree, key))
}

/// Decodes a record; any failure is a [`CoreError::CorruptRecord`] at the
/// location `location` describes (built only on failure).
pub(crate) fn decode_at<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    location: impl FnOnce() -> String,
) -> Result<T, CoreError> {
    codec::decode(bytes).map_err(|source| CoreError::CorruptRecord {
        what,
        location: location(),
        source,
    })
}

/// Where a record of a log file lies: the file and the byte offset of its
/// frame.
pub(crate) fn file_location(path: &Path, offset: u64) -> String {
    format!("file {:?}, offset {offset}", path.display().to_string())
}

/// A failure of the file system, as the engine sees it: what was being
/// done, and to which path.
pub(crate) fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> CoreError {
    CoreError::Backend(format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_corrupt_record_naming_tree_and_key() {
        let err = decode::<u64>("cursor", "meta", b"ab", &[0xde, 0xad]).unwrap_err();
        let CoreError::CorruptRecord { what, location, .. } = &err else {
            panic!("expected CorruptRecord, got {err}");
        };
        assert_eq!(*what, "cursor");
        assert_eq!(location, "tree \"meta\", key 0x6162");
    }

    #[test]
    fn records_round_trip() {
        let bytes = encode("number", &(7u64, "x")).unwrap();
        let back: (u64, String) = decode("number", "t", b"k", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_owned()));
    }
}
