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
