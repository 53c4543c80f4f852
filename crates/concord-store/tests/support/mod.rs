//! Helpers shared by the store's integration tests.

use std::path::Path;

/// Opens the closed store's directory in sled itself, waiting for the lock a
/// store dropped a moment ago may still hold on sled's background thread.
pub(crate) fn open_raw(path: &Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(3) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("the closed store opens in sled: {e}"),
        }
    }
}

/// The segment files of the closed store at `path`, by generation: each
/// file's segments, in order. Reads the format (`src/segment_file.rs`): a
/// 13-byte header (`CSEG`, a format byte, the generation in `u64` little
/// endian), then per segment its length and CRC32 (`u32` little endian
/// each) and its bytes.
#[allow(dead_code)]
pub(crate) fn segment_files(path: &Path) -> Vec<(u64, Vec<Vec<u8>>)> {
    let dir = path.join("segments");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the segment directory lists")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("the file reads");
            assert_eq!(&bytes[..4], b"CSEG", "{name}");
            let generation = u64::from_le_bytes(bytes[5..13].try_into().expect("8 bytes"));
            assert_eq!(name, format!("{generation:020}.seg"));
            let mut segments = Vec::new();
            let mut at = 13;
            while at < bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                let start = at + 8;
                segments.push(bytes[start..start + len as usize].to_vec());
                at = start + len as usize;
            }
            (generation, segments)
        })
        .collect()
}

/// Writes the segment file of `generation` into the closed store at `path`,
/// framed as [`segment_files`] reads it, replacing any.
#[allow(dead_code)]
pub(crate) fn write_segment_file(path: &Path, generation: u64, segments: &[Vec<u8>]) {
    let mut bytes = b"CSEG\x01".to_vec();
    bytes.extend_from_slice(&generation.to_le_bytes());
    for segment in segments {
        bytes.extend_from_slice(&(segment.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(segment).to_le_bytes());
        bytes.extend_from_slice(segment);
    }
    std::fs::write(
        path.join("segments").join(format!("{generation:020}.seg")),
        bytes,
    )
    .expect("the file writes");
}
