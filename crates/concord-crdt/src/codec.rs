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

/// Appends `value`'s body (the bytes [`encode`] writes after the format
/// byte) to `out`. Encoding is concatenative: the body of a struct is the
/// bodies of its fields one after another, so a hand-written encoder (see
/// [`put_u64`]) may write part of a record and leave the rest to this.
pub fn encode_body_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CrdtError> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|source| CrdtError::Encode {
            source: Box::new(source),
        })
}

/// Appends an unsigned integer (`u16`, `u32`, `u64`, a length or an enum
/// variant) as the format writes it: below 251 one byte; otherwise a marker
/// byte (251, 252, 253) and the value as a little-endian `u16`, `u32` or
/// `u64`, whichever is the smallest that holds it.
///
/// ```
/// let mut out = Vec::new();
/// concord_crdt::codec::put_u64(&mut out, 300);
/// assert_eq!(out, [251, 0x2c, 0x01]);
/// ```
#[inline]
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    if value < 251 {
        out.push(value as u8);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Appends a signed integer as the format writes it: zigzag (0, -1, 1,
/// -2, ... as 0, 1, 2, 3, ...), then as [`put_u64`].
///
/// ```
/// let mut out = Vec::new();
/// concord_crdt::codec::put_i64(&mut out, -2);
/// assert_eq!(out, [3]);
/// ```
#[inline]
pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends a byte string as the format writes it: its length (as
/// [`put_u64`]), then the bytes.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
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

    #[test]
    fn hand_written_integers_match_the_encoder() {
        let unsigned = [
            0u64,
            1,
            250,
            251,
            252,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ];
        for v in unsigned {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            assert_eq!(out, encode(&v).unwrap()[1..], "u64 {v}");
            if let Ok(small) = u16::try_from(v) {
                assert_eq!(out, encode(&small).unwrap()[1..], "u16 {v}");
            }
            if let Ok(small) = u32::try_from(v) {
                assert_eq!(out, encode(&small).unwrap()[1..], "u32 {v}");
            }
        }
        let signed = [
            0i64,
            -1,
            1,
            -125,
            125,
            -126,
            126,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ];
        for v in signed {
            let mut out = Vec::new();
            put_i64(&mut out, v);
            assert_eq!(out, encode(&v).unwrap()[1..], "i64 {v}");
        }
        let bytes = vec![7u8; 300];
        let mut out = Vec::new();
        put_bytes(&mut out, &bytes);
        assert_eq!(out, encode(&bytes).unwrap()[1..]);
        let mut body = Vec::new();
        encode_body_into(&(5u64, -3i64), &mut body).unwrap();
        assert_eq!(body, encode(&(5u64, -3i64)).unwrap()[1..]);
    }
}
