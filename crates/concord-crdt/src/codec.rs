//! The stable binary encoding of every record: a format-version byte, then bincode.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CrdtError;

/// The format version this build writes and reads (the first byte of a record).
pub const FORMAT_VERSION: u8 = 1;

/// The largest body [`decode`] accepts: larger inputs are refused before any
/// allocation, so a corrupt length prefix cannot exhaust memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes `value` as a record: [`FORMAT_VERSION`], then its bincode 2 body
/// (little endian, variable-length integers).
///
/// ```
/// use concord_crdt::{codec, GCounter, RegionId};
/// let mut c = GCounter::new();
/// c.increment(RegionId::new(1), 300)?;
/// let bytes = codec::encode(&c)?;
/// assert_eq!(bytes[0], codec::FORMAT_VERSION);
/// assert_eq!(codec::decode::<GCounter>(&bytes)?, c);
/// # Ok::<(), concord_crdt::CrdtError>(())
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CrdtError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|source| {
        CrdtError::Encode {
            source: Box::new(source),
        }
    })?;
    Ok(out)
}

/// Decodes a record written by [`encode`].
///
/// Any byte string gives either the value or a typed error, never a panic:
/// an empty input, an unknown version byte, a malformed or truncated body,
/// a body that breaks a type's invariants (unsorted entries, a sibling its
/// context does not cover, ...), or bytes left over after the body.
///
/// ```
/// use concord_crdt::{codec, CrdtError, VersionVector};
/// assert!(matches!(codec::decode::<VersionVector>(&[]), Err(CrdtError::EmptyRecord)));
/// assert!(matches!(
///     codec::decode::<VersionVector>(&[9, 0]),
///     Err(CrdtError::UnsupportedVersion { found: 9, .. })
/// ));
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CrdtError> {
    let (&version, body) = bytes.split_first().ok_or(CrdtError::EmptyRecord)?;
    if version != FORMAT_VERSION {
        return Err(CrdtError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (value, read) = bincode::serde::decode_from_slice(body, config()).map_err(|source| {
        CrdtError::Malformed {
            source: Box::new(source),
        }
    })?;
    if read != body.len() {
        return Err(CrdtError::TrailingBytes {
            count: body.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GCounter, RegionId};

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&GCounter::new()).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<GCounter>(&bytes),
            Err(CrdtError::TrailingBytes { count: 1 })
        ));
    }

    #[test]
    fn truncated_body_is_malformed() {
        let mut c = GCounter::new();
        c.increment(RegionId::new(7), 1 << 40).unwrap();
        let bytes = encode(&c).unwrap();
        for cut in 1..bytes.len() {
            let err = decode::<GCounter>(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, CrdtError::Malformed { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // Version, then a varint length of u64::MAX for the entry sequence.
        let bytes = [
            FORMAT_VERSION,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
        ];
        assert!(decode::<GCounter>(&bytes).is_err());
    }
}
