//! The storage conformance suite on [`MemoryStorage`].

use concord_core::MemoryStorage;
use concord_core::storage_conformance::{StoreHarness, test_all};

/// Fresh stores in memory; a crash drops what was not synced.
struct Memory;

impl StoreHarness for Memory {
    type Store = MemoryStorage;

    fn fresh(&mut self) -> MemoryStorage {
        MemoryStorage::new()
    }

    fn crash_and_reopen(&mut self, store: MemoryStorage) -> MemoryStorage {
        // A clone shares the data: the restarted node's handle.
        let disk = store.clone();
        drop(store);
        disk.crash();
        disk
    }

    fn loses_unsynced(&self) -> bool {
        true
    }
}

#[test]
fn memory_storage_passes_the_conformance_suite() {
    test_all(&mut Memory);
}
