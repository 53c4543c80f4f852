//! How a record lies in a log file: a 20-byte header, then the record.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | CRC32 (IEEE) of bytes 4..20 and of the record, `u32` little endian |
//! | 4..8 | the record's length in bytes, `u32` little endian |
//! | 8..16 | the seq of its first write, `u64` little endian |
//! | 16..20 | how many writes it holds, `u32` little endian |
//! | 20.. | the record: a `WriteBatch` as `concord_crdt::codec` encodes it |
//!
//! The header repeats the record's seqs so that opening a store indexes
//! its log files without decoding them; reading a record checks that the
//! two agree. The checksum covers the length, so a run of zero bytes (what a
//! file system may leave past a crash) never reads as a frame.

use concord_crdt::codec;

/// The length of a frame's header.
pub(crate) const HEADER_LEN: usize = 20;

/// A frame's header, as read: nothing in it is trusted until the checksum
/// matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The stored checksum.
    pub(crate) crc: u32,
    /// The record's length.
    pub(crate) len: u32,
    /// The seq of the record's first write.
    pub(crate) first: u64,
    /// How many writes the record holds.
    pub(crate) count: u32,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`
    /// (`None` when there are fewer).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let (crc, rest) = bytes.split_at(4);
        let (len, rest) = rest.split_at(4);
        let (first, count) = rest.split_at(8);
        Some(Self {
            crc: u32::from_le_bytes(crc.try_into().ok()?),
            len: u32::from_le_bytes(len.try_into().ok()?),
            first: u64::from_le_bytes(first.try_into().ok()?),
            count: u32::from_le_bytes(count.try_into().ok()?),
        })
    }

    /// The seq of the record's last write, when the header describes a
    /// possible record: at least one write, a length within what a record
    /// may be, and seqs that do not overflow.
    pub(crate) fn last(&self) -> Option<u64> {
        if self.count == 0 || self.len == 0 || self.len as usize > codec::MAX_RECORD_BYTES {
            return None;
        }
        self.first.checked_add(u64::from(self.count) - 1)
    }

    /// The frame's whole length: header and record.
    pub(crate) fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// True when the stored checksum is that of the header's other fields
    /// and `record`.
    pub(crate) fn matches(&self, record: &[u8]) -> bool {
        record.len() == self.len as usize
            && checksum(self.len, self.first, self.count, record) == self.crc
    }
}

/// The checksum of a frame's fields and record.
fn checksum(len: u32, first: u64, count: u32, record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&first.to_le_bytes());
    h.update(&count.to_le_bytes());
    h.update(record);
    h.finalize()
}

/// Appends the frame of `record` (of `count` writes from seq `first`) to
/// `out`. The caller keeps `record` within [`codec::MAX_RECORD_BYTES`]
/// (the store's encoder refuses larger ones), so its length fits a `u32`.
pub(crate) fn push_frame(out: &mut Vec<u8>, first: u64, count: u32, record: &[u8]) {
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + record.len());
    out.extend_from_slice(&checksum(len, first, count, record).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u64, count: u32, record: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_frame(&mut out, first, count, record);
        out
    }

    #[test]
    fn a_frame_round_trips() {
        let bytes = frame(41, 3, b"\x01record");
        assert_eq!(bytes.len(), HEADER_LEN + 7);
        let h = Header::parse(&bytes).expect("a whole header");
        assert_eq!((h.len, h.first, h.count), (7, 41, 3));
        assert_eq!(h.last(), Some(43));
        assert_eq!(h.frame_len(), bytes.len() as u64);
        assert!(h.matches(&bytes[HEADER_LEN..]));
    }

    #[test]
    fn any_changed_byte_fails_the_checksum() {
        let bytes = frame(7, 2, b"\x01some record bytes");
        for i in 0..bytes.len() {
            let mut spoiled = bytes.clone();
            spoiled[i] ^= 0x20;
            let h = Header::parse(&spoiled).expect("a whole header");
            assert!(
                !h.matches(spoiled.get(HEADER_LEN..).unwrap_or_default()),
                "byte {i}"
            );
        }
    }

    #[test]
    fn zeros_and_short_input_are_no_frame() {
        assert_eq!(Header::parse(&[0; HEADER_LEN - 1]), None);
        let zeros = Header::parse(&[0; HEADER_LEN]).expect("a whole header");
        assert_eq!(zeros.last(), None, "no writes, no length");
        assert!(!zeros.matches(&[]));
    }

    #[test]
    fn impossible_headers_have_no_last_seq() {
        let h = |len, first, count| Header {
            crc: 0,
            len,
            first,
            count,
        };
        assert_eq!(h(1, 1, 0).last(), None);
        assert_eq!(h(0, 1, 1).last(), None);
        assert_eq!(h(u32::MAX, 1, 1).last(), None);
        assert_eq!(h(10, u64::MAX, 2).last(), None);
        assert_eq!(h(10, u64::MAX, 1).last(), Some(u64::MAX));
    }
}
