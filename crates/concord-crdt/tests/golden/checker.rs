//! The golden-vector checker shared by the crates whose stored encodings
//! are pinned (`concord-crdt` and, through `#[path]`, `concord-core`).
//!
//! Each case is encoded with `concord_crdt::codec` and compared with the
//! hex line of its name in the crate's `tests/golden/vectors.txt`; the
//! checked-in bytes are then decoded and compared with the case. An
//! encoding change therefore fails instead of silently making old records
//! unreadable. `CONCORD_BLESS=1` records the vectors instead (for a new
//! case, or after a deliberate format change, which also bumps the format
//! byte).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use concord_crdt::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// The cases checked so far against one vectors file.
pub(crate) struct Golden {
    file: PathBuf,
    pinned: BTreeMap<String, String>,
    now: BTreeMap<String, String>,
    mismatches: Vec<String>,
}

impl Golden {
    /// Checks against the vectors in `file` (none yet if it is missing).
    pub(crate) fn open(file: PathBuf) -> Self {
        let pinned = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (name, hex) = line.split_once(' ')?;
                Some((name.to_owned(), hex.trim().to_owned()))
            })
            .collect();
        Self {
            file,
            pinned,
            now: BTreeMap::new(),
            mismatches: Vec::new(),
        }
    }

    /// Encodes `value`, compares it with the vector named `name`, and
    /// decodes that vector back to compare it with `value`.
    pub(crate) fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(
        &mut self,
        name: &str,
        value: T,
    ) {
        let encoded = to_hex(&codec::encode(&value).expect("encodes"));
        self.now.insert(name.to_owned(), encoded.clone());
        let Some(pinned) = self.pinned.get(name) else {
            self.mismatches.push(format!(
                "{name}: no stored vector (run with CONCORD_BLESS=1)"
            ));
            return;
        };
        if *pinned != encoded {
            self.mismatches.push(format!(
                "{name}: encoding changed: stored {pinned}, now {encoded}"
            ));
        }
        match codec::decode::<T>(&from_hex(pinned)) {
            Ok(decoded) if decoded == value => {}
            Ok(decoded) => self
                .mismatches
                .push(format!("{name}: stored bytes decode to {decoded:?}")),
            Err(e) => self
                .mismatches
                .push(format!("{name}: stored bytes do not decode: {e}")),
        }
    }

    /// Records the vectors under `CONCORD_BLESS`; otherwise fails with
    /// every mismatch found.
    pub(crate) fn finish(self) {
        if std::env::var_os("CONCORD_BLESS").is_some() {
            let mut text = String::from(
                "# name hex: the encoded bytes of each golden case (see tests/golden_vectors.rs)\n",
            );
            for (name, hex) in &self.now {
                text.push_str(&format!("{name} {hex}\n"));
            }
            std::fs::create_dir_all(self.file.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&self.file, text).expect("writes the vectors");
            return;
        }
        assert!(
            self.mismatches.is_empty(),
            "golden vectors differ:\n{}",
            self.mismatches.join("\n")
        );
    }
}
