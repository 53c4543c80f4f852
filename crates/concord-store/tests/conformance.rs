//! The storage conformance suite on [`SledStore`], each store in its own
//! temporary directory.

use concord_core::storage_conformance::{StoreHarness, test_all};
use concord_store::SledStore;
use tempfile::TempDir;

/// Makes stores in temporary directories, kept until the harness drops.
#[derive(Default)]
struct Sled {
    dirs: Vec<TempDir>,
}

impl StoreHarness for Sled {
    type Store = SledStore;

    fn fresh(&mut self) -> SledStore {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SledStore::open(dir.path()).expect("a new store opens");
        self.dirs.push(dir);
        store
    }

    /// Drops the store (sled flushes what it can) and opens its directory
    /// again. A process crash could lose unsynced appends, which the suite
    /// allows for a store that does not model power cuts.
    fn crash_and_reopen(&mut self, store: SledStore) -> SledStore {
        let path = store.path().to_path_buf();
        drop(store);
        SledStore::open(&path).expect("a closed store reopens")
    }
}

#[test]
fn sled_store_passes_the_conformance_suite() {
    test_all(&mut Sled::default());
}
