//! The store's on-disk layout: directory, file and tree names, and key
//! encodings.

use concord_core::{Collection, EntityKey};
use concord_crdt::RegionId;

/// The write-ahead log's directory inside the store's: the per-origin log
/// files (see [`wal_file_name`]).
pub(crate) const WAL_DIR: &str = "wal";
/// The sled database that held the log before it moved to files (`log/`
/// inside the store's directory): moved into [`WAL_DIR`] when found.
pub(crate) const LEGACY_LOG_DIR: &str = "log";
/// [`LEGACY_LOG_DIR`] renamed once its records are durable in [`WAL_DIR`]:
/// the rename is the moment the move is done; the directory is then removed.
pub(crate) const MIGRATED_LOG_DIR: &str = "log.migrated";

/// The per-origin logs of earlier stores, in sled (in [`LEGACY_LOG_DIR`],
/// or before that in the state's database): one record per appended
/// `WriteBatch`, under [`log_key`].
pub(crate) const LOG: &str = "log";
/// The directory of segment files inside the store's (see
/// [`segment_file_name`] and [`crate::segment_file`]).
pub(crate) const SEGMENT_DIR: &str = "segments";
/// Checkpointed entity states in segments in sled, as stores before segment
/// files kept them: moved into [`SEGMENT_DIR`] when such a store opens.
pub(crate) const SEGMENTS: &str = "segments";
/// Entity states one record each, as stores before segments kept them: read
/// once, into a segment, when such a store opens.
pub(crate) const LEGACY_ENTITIES: &str = "entities";
/// Checkpointed conflict-queue items.
pub(crate) const QUEUE: &str = "queue";
/// Loser records one record each, as stores before loser chunks kept them:
/// read once, into chunks, when such a store opens.
pub(crate) const LEGACY_LOSERS: &str = "losers";
/// Checkpointed loser records, in chunks: each checkpoint's new records
/// packed into a few large values.
pub(crate) const LOSER_CHUNKS: &str = "loser_chunks";
/// Checkpointed cursors and engine metadata.
pub(crate) const META: &str = "meta";

/// The key of the checkpoint's cursors in [`META`].
pub(crate) const META_CURSORS: &[u8] = b"cursors";
/// The key of the checkpoint's `EngineMeta` in [`META`].
pub(crate) const META_ENGINE: &[u8] = b"engine";
/// The key of the segments' index in [`META`].
pub(crate) const META_SEGMENTS: &[u8] = b"segments";
/// The key of the loser chunks' index in [`META`].
pub(crate) const META_LOSERS: &[u8] = b"losers";

/// The length of a segment key.
const SEGMENT_KEY_LEN: usize = 12;

/// The key of chunk `chunk` of generation `generation` in [`SEGMENTS`]: big
/// endian, so segments sort by generation (oldest first), then chunk.
/// (Only read now, when a store that kept segments in sled opens.)
#[cfg(test)]
pub(crate) fn segment_key(generation: u64, chunk: u32) -> [u8; SEGMENT_KEY_LEN] {
    let mut key = [0u8; SEGMENT_KEY_LEN];
    key[..8].copy_from_slice(&generation.to_be_bytes());
    key[8..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The generation and chunk a segment key names, if it is one.
pub(crate) fn parse_segment_key(key: &[u8]) -> Option<(u64, u32)> {
    let key: &[u8; SEGMENT_KEY_LEN] = key.try_into().ok()?;
    let (generation, chunk) = key.split_at(8);
    Some((
        u64::from_be_bytes(generation.try_into().ok()?),
        u32::from_be_bytes(chunk.try_into().ok()?),
    ))
}

/// The length of a loser chunk key.
const LOSER_CHUNK_KEY_LEN: usize = 16;

/// The key of the loser chunk holding records `first` to `last` (by id) in
/// [`LOSER_CHUNKS`]: both big endian, so chunks sort by id, and the last id
/// is known without reading the chunk.
pub(crate) fn loser_chunk_key(first: u64, last: u64) -> [u8; LOSER_CHUNK_KEY_LEN] {
    let mut key = [0u8; LOSER_CHUNK_KEY_LEN];
    key[..8].copy_from_slice(&first.to_be_bytes());
    key[8..].copy_from_slice(&last.to_be_bytes());
    key
}

/// The first and last id a loser chunk key names, if it is one.
pub(crate) fn parse_loser_chunk_key(key: &[u8]) -> Option<(u64, u64)> {
    let key: &[u8; LOSER_CHUNK_KEY_LEN] = key.try_into().ok()?;
    let (first, last) = key.split_at(8);
    Some((
        u64::from_be_bytes(first.try_into().ok()?),
        u64::from_be_bytes(last.try_into().ok()?),
    ))
}

/// The length of a log key.
const LOG_KEY_LEN: usize = 10;

/// The key of the log record of `origin` whose first write is `first_seq`:
/// big endian, so keys sort by origin, then seq. (The store only reads
/// such keys now, to move an earlier store's log into files.)
#[cfg(test)]
pub(crate) fn log_key(origin: RegionId, first_seq: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..2].copy_from_slice(&origin.get().to_be_bytes());
    key[2..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

/// The origin and first seq a log key names, if it is one.
pub(crate) fn parse_log_key(key: &[u8]) -> Option<(RegionId, u64)> {
    let key: &[u8; LOG_KEY_LEN] = key.try_into().ok()?;
    let (origin, seq) = key.split_at(2);
    let origin = u16::from_be_bytes(origin.try_into().ok()?);
    let seq = u64::from_be_bytes(seq.try_into().ok()?);
    Some((RegionId::new(origin), seq))
}

/// The length of a log file's name: `OOOOO-SSSSSSSSSSSSSSSSSSSS.wal`.
const WAL_NAME_LEN: usize = 5 + 1 + 20 + 4;

/// The name of `origin`'s log file whose first record starts at
/// `first_seq`: both numbers in decimal, zero-padded, so that names sort by
/// origin, then seq.
pub(crate) fn wal_file_name(origin: RegionId, first_seq: u64) -> String {
    format!("{:05}-{first_seq:020}.wal", origin.get())
}

/// The origin and first seq a log file's name gives, if it is one (exactly
/// the shape [`wal_file_name`] makes).
pub(crate) fn parse_wal_file_name(name: &str) -> Option<(RegionId, u64)> {
    if name.len() != WAL_NAME_LEN {
        return None;
    }
    let stem = name.strip_suffix(".wal")?;
    let (origin, seq) = stem.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if origin.len() != 5 || seq.len() != 20 || !digits(origin) || !digits(seq) {
        return None;
    }
    Some((RegionId::new(origin.parse().ok()?), seq.parse().ok()?))
}

/// The name of the segment file of `generation`: the generation in 20
/// digits, so names sort as generations do.
pub(crate) fn segment_file_name(generation: u64) -> String {
    format!("{generation:020}.seg")
}

/// The generation a segment file's name gives, if it is one (exactly the
/// shape [`segment_file_name`] makes).
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The key of a queue item or loser record: its id, big endian.
pub(crate) fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The id an id key names, if it is one.
pub(crate) fn parse_id_key(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// The key of an entity, as [`write_entity_key`] writes it.
#[cfg(test)]
pub(crate) fn entity_key(entity: &EntityKey) -> Vec<u8> {
    let mut key = Vec::new();
    write_entity_key(entity, &mut key);
    key
}

/// Appends the key of an entity to `out`: the collection name, a zero byte
/// (which no collection name holds), then the key's bytes. Sorts as
/// [`EntityKey`] does.
pub(crate) fn write_entity_key(entity: &EntityKey, out: &mut Vec<u8>) {
    let name = entity.collection.as_str().as_bytes();
    out.reserve(name.len() + 1 + entity.key.len());
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(&entity.key);
}

/// The entity an entity key names, or why it names none.
pub(crate) fn parse_entity_key(key: &[u8]) -> Result<EntityKey, String> {
    let split = key
        .iter()
        .position(|&b| b == 0)
        .ok_or("an entity key has no zero byte after its collection")?;
    let (name, rest) = key.split_at(split);
    let name = std::str::from_utf8(name)
        .map_err(|e| format!("the collection of an entity key is not UTF-8: {e}"))?;
    let collection =
        Collection::new(name).map_err(|e| format!("an entity key's collection: {e}"))?;
    Ok(EntityKey::new(
        collection,
        rest.get(1..).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_origin_then_seq_and_round_trip() {
        let keys = [
            log_key(RegionId::new(1), 2),
            log_key(RegionId::new(1), 256),
            log_key(RegionId::new(1), u64::MAX),
            log_key(RegionId::new(2), 0),
            log_key(RegionId::new(0x0100), 1),
        ];
        assert!(keys.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(
            parse_log_key(&log_key(RegionId::new(0xABCD), 1 << 50)),
            Some((RegionId::new(0xABCD), 1 << 50))
        );
        assert_eq!(parse_log_key(&[0; 9]), None);
        assert_eq!(parse_log_key(&[0; 11]), None);
    }

    #[test]
    fn wal_file_names_sort_by_origin_then_seq_and_round_trip() {
        let names = [
            wal_file_name(RegionId::new(1), 0),
            wal_file_name(RegionId::new(1), 9),
            wal_file_name(RegionId::new(1), 10),
            wal_file_name(RegionId::new(1), u64::MAX),
            wal_file_name(RegionId::new(2), 1),
            wal_file_name(RegionId::new(u16::MAX), 1),
        ];
        assert!(names.windows(2).all(|p| p[0] < p[1]), "{names:?}");
        for (origin, seq) in [(0, 0), (7, 1 << 50), (u16::MAX, u64::MAX)] {
            let name = wal_file_name(RegionId::new(origin), seq);
            assert_eq!(
                parse_wal_file_name(&name),
                Some((RegionId::new(origin), seq))
            );
        }
        for bad in [
            "",
            "00001-00000000000000000001.log",
            "00001-0000000000000000001.wal",
            "0001-000000000000000000001.wal",
            "00001_00000000000000000001.wal",
            "0000a-00000000000000000001.wal",
            "00001-+0000000000000000001.wal",
            "99999-00000000000000000001.wal",
            "00001-99999999999999999999.wal",
            "00001-00000000000000000001.wal.tmp",
        ] {
            assert_eq!(parse_wal_file_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn segment_keys_sort_by_generation_then_chunk_and_round_trip() {
        let keys = [
            segment_key(0, 0),
            segment_key(1, 0),
            segment_key(1, 1),
            segment_key(1, 256),
            segment_key(2, 0),
            segment_key(256, 0),
        ];
        assert!(keys.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(
            parse_segment_key(&segment_key(1 << 40, 7)),
            Some((1 << 40, 7))
        );
        assert_eq!(parse_segment_key(&[0; 11]), None);
        assert_eq!(parse_segment_key(&[0; 13]), None);
    }

    #[test]
    fn loser_chunk_keys_sort_by_first_id_and_round_trip() {
        let keys = [
            loser_chunk_key(0, 5),
            loser_chunk_key(6, 6),
            loser_chunk_key(7, 300),
            loser_chunk_key(256, 1),
            loser_chunk_key(u64::MAX, u64::MAX),
        ];
        assert!(keys.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(
            parse_loser_chunk_key(&loser_chunk_key(1 << 40, u64::MAX)),
            Some((1 << 40, u64::MAX))
        );
        assert_eq!(parse_loser_chunk_key(&[0; 8]), None);
        assert_eq!(parse_loser_chunk_key(&[0; 17]), None);
    }

    #[test]
    fn id_keys_round_trip_and_sort() {
        assert!(id_key(255) < id_key(256));
        assert_eq!(parse_id_key(&id_key(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_id_key(b"short"), None);
    }

    #[test]
    fn entity_keys_sort_like_entity_keys_and_round_trip() {
        let entity = |c: &str, k: &[u8]| EntityKey::new(Collection::new(c).unwrap(), k);
        let mut entities = vec![
            entity("profiles", b""),
            entity("p", b"rofiles"),
            entity("profiles", &[0, 0xff]),
            entity("profiles.v2", b"a"),
            entity("profiles", b"alice"),
            entity("a", &[0xff; 3]),
        ];
        let mut by_bytes = entities.clone();
        by_bytes.sort_by_key(entity_key);
        entities.sort();
        assert_eq!(by_bytes, entities);
        for e in &entities {
            assert_eq!(parse_entity_key(&entity_key(e)).as_ref(), Ok(e));
        }
    }

    #[test]
    fn malformed_entity_keys_are_refused() {
        assert!(parse_entity_key(b"no-separator").is_err());
        assert!(parse_entity_key(b"\0key").is_err());
        assert!(parse_entity_key(b"has space\0key").is_err());
        assert!(parse_entity_key(&[0xff, 0xfe, 0, 1]).is_err());
    }

    #[test]
    fn segment_file_names_round_trip_and_refuse_other_shapes() {
        for generation in [0, 1, 42, u64::MAX] {
            assert_eq!(
                parse_segment_file_name(&segment_file_name(generation)),
                Some(generation)
            );
        }
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        for name in [
            "7.seg",
            "0000000000000000000x.seg",
            "00000000000000000007.wal",
            "99999999999999999999.seg",
        ] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }
}
