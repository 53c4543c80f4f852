//! Serde for byte strings (keys and values) as bytes, not as sequences.
//!
//! serde sees a `Vec<u8>` as a sequence of `u8`s and serializes it one
//! element at a time: for a 100-byte value, a hundred calls where one copy
//! would do. bincode writes a byte string as its length and the bytes, and
//! a sequence of `u8`s as its length and each byte (a `u8` is never
//! variable-length), so the stored bytes are the same either way (the
//! golden vectors in `tests/golden_vectors.rs` pin them). Formats that have
//! no byte strings (JSON) write an array of numbers in both cases, and
//! reading accepts both.
//!
//! Use with `#[serde(with = "crate::serde_bytes")]` on a `Vec<u8>`, and
//! `#[serde(with = "crate::serde_bytes::option")]` on an `Option<Vec<u8>>`.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes a byte string as bytes.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Reads a byte string written as bytes or as a sequence of `u8`s.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteBuf)
}

struct ByteBuf;

impl<'de> Visitor<'de> for ByteBuf {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The hint comes from the input: cap it, so a lying length cannot
        // make a huge allocation.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(out)
    }
}

/// The same for an `Option<Vec<u8>>`.
pub(crate) mod option {
    use std::fmt;

    use serde::de::Visitor;
    use serde::{Deserializer, Serializer};

    /// Serializes `None`, or `Some` and the byte string as bytes.
    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads what [`serialize`] writes (or an option of a `u8` sequence).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        deserializer.deserialize_option(OptionalBytes)
    }

    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct OptionalBytes;

    impl<'de> Visitor<'de> for OptionalBytes {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional byte string")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "crate::serde_bytes")]
        as_bytes: Vec<u8>,
        #[serde(with = "crate::serde_bytes::option")]
        maybe: Option<Vec<u8>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        as_bytes: Vec<u8>,
        maybe: Option<Vec<u8>>,
    }

    #[test]
    fn bincode_bytes_are_those_of_a_u8_sequence() {
        for maybe in [None, Some(Vec::new()), Some((0..=255).collect())] {
            let as_bytes: Vec<u8> = (0..300u32).map(|n| (n * 7) as u8).collect();
            let both = Both {
                as_bytes: as_bytes.clone(),
                maybe: maybe.clone(),
            };
            let plain = Plain { as_bytes, maybe };
            let encoded = concord_crdt::codec::encode(&both).expect("encodes");
            assert_eq!(
                encoded,
                concord_crdt::codec::encode(&plain).expect("encodes")
            );
            assert_eq!(
                concord_crdt::codec::decode::<Both>(&encoded).expect("decodes"),
                both
            );
        }
    }

    #[test]
    fn a_truncated_byte_string_is_an_error() {
        let both = Both {
            as_bytes: vec![1; 40],
            maybe: Some(vec![2; 40]),
        };
        let encoded = concord_crdt::codec::encode(&both).expect("encodes");
        for cut in 1..encoded.len() {
            assert!(concord_crdt::codec::decode::<Both>(&encoded[..cut]).is_err());
        }
    }
}
