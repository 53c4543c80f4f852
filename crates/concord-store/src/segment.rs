//! Segments: many entity records packed into one value.
//!
//! A segment is a format byte, the number of entries (`u32` big endian),
//! then each entry: the length of its entity key (`u32` big endian), the key
//! (as [`crate::layout::write_entity_key`] writes it), the length of its
//! record (`u32` big endian) and the record (an `Entity` in
//! `concord_crdt::codec`). Entries are in strictly increasing key order. The
//! framing is read without decoding the records, so that a compaction moves
//! records as bytes. Loser chunks ([`crate::losers`]) use the same framing,
//! with record ids as keys.
//!
//! Records are encoded straight into the segment being packed
//! ([`Packer::push_with`], [`encode_into`]): a checkpoint makes no buffer
//! per record.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use concord_core::{CoreError, Entity};
use concord_crdt::codec;
use serde::{Deserialize, Serialize};

/// The format byte every segment starts with.
const SEGMENT_FORMAT: u8 = 1;
/// The bytes before a segment's first entry: format byte and entry count.
const HEADER_LEN: usize = 5;

/// What the store knows about its segments, kept in the `meta` tree and
/// written in the same transaction as the segments themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentIndex {
    /// The generation the next checkpoint writes: every segment's
    /// generation is below it.
    pub(crate) next_generation: u64,
    /// The entries all segments hold, counting overridden ones.
    pub(crate) stored: u64,
    /// The entries of the last compaction's generation: the number of live
    /// entities then. Entities are never removed, so there are at least
    /// that many live ones now.
    pub(crate) base: u64,
    /// The generations the segments hold: the last this many before
    /// `next_generation` (a checkpoint adds one past all others, a
    /// compaction replaces all with one). A segment of any other generation
    /// is not part of the checkpoint.
    pub(crate) generations: u64,
}

impl SegmentIndex {
    /// The index of a store without segments: generations start at 1 (0 is
    /// the one-time conversion of a store that kept one record per entity).
    pub(crate) fn empty() -> Self {
        Self {
            next_generation: 1,
            ..Self::default()
        }
    }
}

/// Packs `entries` (in strictly increasing key order) into segments of
/// about `target` bytes each; an entry larger than that gets a segment of
/// its own. No entries, no segments.
pub(crate) fn pack<'a>(
    entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    target: usize,
) -> Result<Vec<Vec<u8>>, CoreError> {
    Ok(pack_counted(entries, target)?
        .into_iter()
        .map(|(segment, _)| segment)
        .collect())
}

/// As [`pack`], with the number of entries of each segment: segment `i`
/// holds the entries that follow those of the segments before it.
pub(crate) fn pack_counted<'a>(
    entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    target: usize,
) -> Result<Vec<(Vec<u8>, usize)>, CoreError> {
    let mut packer = Packer::new(target);
    for (key, record) in entries {
        packer.push(key, record)?;
    }
    Ok(packer.finish())
}

/// Builds segments of about `target` bytes entry by entry, in the order
/// given (which must be strictly increasing key order), each record
/// written straight into its segment.
pub(crate) struct Packer {
    target: usize,
    done: Vec<(Vec<u8>, usize)>,
    current: Vec<u8>,
    count: u32,
}

impl Packer {
    /// A packer of segments of about `target` bytes.
    pub(crate) fn new(target: usize) -> Self {
        Self {
            target,
            done: Vec::new(),
            current: Vec::new(),
            count: 0,
        }
    }

    /// Appends an entry of `key` and `record`.
    pub(crate) fn push(&mut self, key: &[u8], record: &[u8]) -> Result<(), CoreError> {
        self.push_with(key, |out| {
            out.extend_from_slice(record);
            Ok(())
        })
    }

    /// Appends an entry of `key` and the record `write` appends to the
    /// buffer it is given (and nothing else). An entry that would take the
    /// segment past the target starts the next one (or, alone, is a segment
    /// of its own).
    pub(crate) fn push_with(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        if self.count == 0 {
            self.current.reserve(self.target.min(64 << 20));
            self.current.push(SEGMENT_FORMAT);
            self.current.extend_from_slice(&[0; 4]);
        }
        let start = self.current.len();
        self.current
            .extend_from_slice(&len_of(key.len(), "entity key")?.to_be_bytes());
        self.current.extend_from_slice(key);
        let record_at = self.current.len() + 4;
        self.current.extend_from_slice(&[0; 4]);
        write(&mut self.current)?;
        let record_len = len_of(self.current.len() - record_at, "entity")?;
        if let Some(slot) = self.current.get_mut(record_at - 4..record_at) {
            slot.copy_from_slice(&record_len.to_be_bytes());
        }
        if self.count > 0 && self.current.len() > self.target {
            // Too large for this segment: the entry starts the next.
            let entry = self.current.split_off(start);
            self.seal();
            self.current
                .reserve(self.target.max(entry.len() + HEADER_LEN));
            self.current.push(SEGMENT_FORMAT);
            self.current.extend_from_slice(&[0; 4]);
            self.current.extend_from_slice(&entry);
        }
        self.count = self.count.checked_add(1).ok_or(CoreError::TooLarge {
            what: "segment",
            len: usize::MAX,
            max: u32::MAX as usize,
        })?;
        Ok(())
    }

    /// Closes the segment being built.
    fn seal(&mut self) {
        let segment = finish(std::mem::take(&mut self.current), self.count);
        self.done.push((segment, self.count as usize));
        self.count = 0;
    }

    /// The segments finished so far (each with its number of entries),
    /// taken out of the packer: a caller that stores them as they come need
    /// not hold them all at once.
    pub(crate) fn take_finished(&mut self) -> Vec<(Vec<u8>, usize)> {
        std::mem::take(&mut self.done)
    }

    /// The segments, each with its number of entries.
    pub(crate) fn finish(mut self) -> Vec<(Vec<u8>, usize)> {
        if self.count > 0 {
            self.seal();
        }
        self.done
    }
}

/// The bincode configuration of `concord_crdt::codec` records (a test
/// checks that [`encode_into`] writes exactly the bytes `codec::encode`
/// does).
fn record_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<{ codec::MAX_RECORD_BYTES }>()
}

/// Appends `value` to `out` as a `concord_crdt::codec` record (its format
/// byte, then its bincode body), as `codec::encode` would make it but with
/// no buffer of its own: a checkpoint encodes its records straight into
/// their segments. Refuses a record too large for `codec::decode` to read
/// back (and then leaves `out` as it was).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CoreError> {
    record_into(what, out, |out| {
        bincode::serde::encode_into_std_write(value, out, record_config())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// As [`encode_into`] for an entity, with its hand-written encoder
/// ([`Entity::encode_body_into`]: the same bytes, several times faster).
pub(crate) fn encode_entity_into(
    what: &'static str,
    entity: &Entity,
    out: &mut Vec<u8>,
) -> Result<(), CoreError> {
    record_into(what, out, |out| {
        entity.encode_body_into(out).map_err(|e| e.to_string())
    })
}

/// Appends a record: the format byte, then what `body` writes. Leaves `out`
/// as it was if `body` fails or the record is too large to read back.
fn record_into(
    what: &'static str,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), CoreError> {
    let start = out.len();
    out.push(codec::FORMAT_VERSION);
    let written = body(out);
    let len = out.len() - start;
    if let Err(e) = written {
        out.truncate(start);
        return Err(CoreError::Backend(format!("encoding a {what}: {e}")));
    }
    if len > codec::MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(CoreError::TooLarge {
            what,
            len,
            max: codec::MAX_RECORD_BYTES,
        });
    }
    Ok(())
}

/// A length as the framing stores it.
fn len_of(len: usize, what: &'static str) -> Result<u32, CoreError> {
    u32::try_from(len).map_err(|_| CoreError::TooLarge {
        what,
        len,
        max: u32::MAX as usize,
    })
}

/// Writes the entry count into a finished segment.
fn finish(mut segment: Vec<u8>, count: u32) -> Vec<u8> {
    if let Some(slot) = segment.get_mut(1..HEADER_LEN) {
        slot.copy_from_slice(&count.to_be_bytes());
    }
    segment
}

/// One entry of a segment: an entity key's bytes and its record's.
pub(crate) type RawEntry<'a> = (&'a [u8], &'a [u8]);

/// Entries in strictly increasing key order, each a key and a `T`.
pub(crate) type Run<'a, T> = Vec<(&'a [u8], T)>;

/// The entries of a segment, as (key, record) byte slices, or why the bytes
/// are not a segment: any byte string gives one or the other, never a panic.
pub(crate) fn unpack(bytes: &[u8]) -> Result<Vec<RawEntry<'_>>, String> {
    let (&format, rest) = bytes.split_first().ok_or("an empty segment")?;
    if format != SEGMENT_FORMAT {
        return Err(format!(
            "segment format {format}, this store reads format {SEGMENT_FORMAT}"
        ));
    }
    let mut reader = Reader { rest };
    let count = reader.u32().ok_or("a segment shorter than its header")?;
    // Each entry takes at least 8 bytes: never trust a count beyond that.
    let mut entries = Vec::with_capacity((count as usize).min(reader.rest.len() / 8));
    for n in 0..count {
        let key = reader
            .block()
            .ok_or_else(|| format!("entry {n} of {count}: the key runs past the segment's end"))?;
        let record = reader.block().ok_or_else(|| {
            format!("entry {n} of {count}: the record runs past the segment's end")
        })?;
        if let Some((previous, _)) = entries.last()
            && *previous >= key
        {
            return Err(format!(
                "entry {n} of {count}: keys are not in strictly increasing order"
            ));
        }
        entries.push((key, record));
    }
    if !reader.rest.is_empty() {
        return Err(format!(
            "{} bytes after the segment's {count} entries",
            reader.rest.len()
        ));
    }
    Ok(entries)
}

/// Merges runs of entries, each in strictly increasing key order, into one
/// in that order, keeping for each key the entry of the latest run that
/// holds it (runs are given oldest first).
pub(crate) fn merge_newest<T>(runs: Vec<Vec<(&[u8], T)>>) -> Vec<(&[u8], T)> {
    let merge = MergeNewest::new(runs);
    let mut out = Vec::with_capacity(merge.remaining());
    out.extend(merge);
    out
}

/// [`merge_newest`] as an iterator, entry by entry.
pub(crate) struct MergeNewest<'a, T> {
    runs: Vec<std::vec::IntoIter<(&'a [u8], T)>>,
    /// The head key of each run; on equal keys the latest run comes first.
    heap: BinaryHeap<(Reverse<&'a [u8]>, usize)>,
    /// The key of the last entry given.
    last: Option<&'a [u8]>,
}

impl<'a, T> MergeNewest<'a, T> {
    /// The merge of `runs` (oldest first).
    pub(crate) fn new(runs: Vec<Vec<(&'a [u8], T)>>) -> Self {
        let runs: Vec<std::vec::IntoIter<(&'a [u8], T)>> =
            runs.into_iter().map(Vec::into_iter).collect();
        let heap = runs
            .iter()
            .enumerate()
            .filter_map(|(run, it)| it.as_slice().first().map(|(k, _)| (Reverse(*k), run)))
            .collect();
        Self {
            runs,
            heap,
            last: None,
        }
    }

    /// The entries not merged yet, counting those a later run overrides.
    pub(crate) fn remaining(&self) -> usize {
        self.runs.iter().map(|r| r.len()).sum()
    }
}

impl<'a, T> Iterator for MergeNewest<'a, T> {
    type Item = (&'a [u8], T);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((Reverse(key), run)) = self.heap.pop() {
            let Some(it) = self.runs.get_mut(run) else {
                continue;
            };
            let Some(entry) = it.next() else {
                continue;
            };
            if let Some((next, _)) = it.as_slice().first() {
                self.heap.push((Reverse(*next), run));
            }
            if self.last != Some(key) {
                self.last = Some(key);
                return Some(entry);
            }
        }
        None
    }
}

/// Reads a segment's framing from the front.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.rest.split_first_chunk::<4>()?;
        self.rest = rest;
        Some(u32::from_be_bytes(*head))
    }

    /// A length, then that many bytes.
    fn block(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.rest.len() {
            return None;
        }
        let (block, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("c\0k{i:05}").into_bytes(), vec![1; i % 40]))
            .collect()
    }

    fn borrowed(e: &[(Vec<u8>, Vec<u8>)]) -> impl Iterator<Item = (&[u8], &[u8])> {
        e.iter().map(|(k, r)| (&k[..], &r[..]))
    }

    #[test]
    fn segments_round_trip_split_near_the_target() {
        let all = entries(1000);
        let segments = pack(borrowed(&all), 4096).unwrap();
        assert!(segments.len() > 5);
        // Every segment but the last is full to about the target.
        for s in &segments[..segments.len() - 1] {
            assert!(s.len() <= 4096 && s.len() > 4096 - 64, "{}", s.len());
        }
        let back: Vec<(Vec<u8>, Vec<u8>)> = segments
            .iter()
            .flat_map(|s| unpack(s).unwrap())
            .map(|(k, r)| (k.to_vec(), r.to_vec()))
            .collect();
        assert_eq!(back, all);
    }

    #[test]
    fn records_encoded_in_place_are_those_of_the_codec() {
        let delta = concord_core::storage_conformance::sample_delta();
        let mut out = vec![7u8];
        for (key, entity) in &delta.entities {
            let start = out.len();
            encode_into("entity", entity, &mut out).unwrap();
            assert_eq!(out[start..], codec::encode(entity).unwrap()[..], "{key:?}");
        }
        for loser in &delta.losers {
            let start = out.len();
            encode_into("loser", loser, &mut out).unwrap();
            assert_eq!(out[start..], codec::encode(loser).unwrap()[..]);
        }
        assert_eq!(out[0], 7, "what was there stays");
    }

    #[test]
    fn records_written_in_place_pack_as_given_ones_do() {
        let all = entries(500);
        let given = pack_counted(borrowed(&all), 1000).unwrap();
        let mut packer = Packer::new(1000);
        for (k, r) in &all {
            packer
                .push_with(k, |out| {
                    out.extend_from_slice(r);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(packer.finish(), given);
        assert_eq!(given.iter().map(|(_, n)| n).sum::<usize>(), 500);
    }

    #[test]
    fn an_entry_larger_than_the_target_gets_its_own_segment() {
        let big = vec![(b"a".to_vec(), vec![0; 100]), (b"b".to_vec(), vec![0; 10])];
        let segments = pack(borrowed(&big), 50).unwrap();
        assert_eq!(segments.len(), 2);
        assert!(pack(std::iter::empty(), 50).unwrap().is_empty());
    }

    #[test]
    fn merging_keeps_the_latest_run_of_each_key_in_key_order() {
        let runs: Vec<Vec<(&[u8], u32)>> = vec![
            vec![(b"a", 0), (b"c", 0), (b"e", 0)],
            vec![],
            vec![(b"b", 2), (b"c", 2)],
            vec![(b"a", 3), (b"f", 3)],
        ];
        let merged = merge_newest(runs);
        let expected: Vec<(&[u8], u32)> =
            vec![(b"a", 3), (b"b", 2), (b"c", 2), (b"e", 0), (b"f", 3)];
        assert_eq!(merged, expected);
        assert!(merge_newest::<u32>(Vec::new()).is_empty());
    }

    #[test]
    fn malformed_segments_are_refused_never_a_panic() {
        let all = entries(3);
        let good = pack(borrowed(&all), 1 << 20).unwrap().remove(0);
        assert!(unpack(&good).is_ok());
        assert!(unpack(&[]).is_err());
        assert!(unpack(&[9, 0, 0, 0, 0]).is_err());
        assert!(unpack(&[SEGMENT_FORMAT, 0, 0]).is_err());
        assert!(unpack(&[&good[..], &[0]].concat()).is_err());
        for cut in 1..good.len() {
            assert!(unpack(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A huge count with nothing behind it.
        assert!(unpack(&[SEGMENT_FORMAT, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Keys out of order.
        let swapped = [all[1].clone(), all[0].clone()];
        let bad = pack(borrowed(&swapped), 1 << 20).unwrap().remove(0);
        assert!(unpack(&bad).unwrap_err().contains("order"));
        // Every single-byte change gives entries or an error.
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xa5;
            let _ = unpack(&flipped);
        }
    }
}
