//! kill -9 a real node process at random moments while it applies local and
//! replicated writes; after each kill, reopen its sled store and check that
//! every acknowledged write is there, counters are exact, and no write was
//! applied or logged twice.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use concord_clock::SystemClock;
use concord_core::{Engine, ReadValue, Storage};
use concord_crdt::RegionId;
use concord_integration::crash::{self, LOCAL, REMOTE};
use concord_store::SledStore;

/// A small deterministic generator for the kill moments.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut last_ack = (0u64, 0u64);
    for round in 0..6 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        let acks_before_kill = 5 + next(&mut rng) % 60;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read a line");
            let mut parts = line.split_whitespace().skip(1);
            let local: u64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("local seq");
            let remote: u64 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("remote seq");
            assert!(
                local >= last_ack.0 && remote >= last_ack.1,
                "acks never go back"
            );
            last_ack = (local, remote);
            seen += 1;
            if seen >= acks_before_kill {
                break;
            }
        }
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        assert!(seen > 0, "round {round}: the child acknowledged nothing");

        let store = SledStore::open(dir.path()).expect("reopen the store");
        let engine = Engine::open(crash::config(0), store, Arc::new(SystemClock))
            .expect("reopen the engine");
        let local = engine.cursor(RegionId::new(0));
        let remote = engine.cursor(RegionId::new(1));
        assert!(
            local >= last_ack.0,
            "round {round}: local seq {local} < acknowledged {}",
            last_ack.0
        );
        assert!(
            remote >= last_ack.1,
            "round {round}: region-1 seq {remote} < acknowledged {}",
            last_ack.1
        );
        // Every local write added 1, and region 1's write s carries total s:
        // exact counters mean nothing was lost or applied twice.
        let value = |key: &[u8]| match engine.read(&crash::collection(), key).expect("read") {
            ReadValue::Counter(v) => v,
            ReadValue::Missing => 0,
            other => panic!("expected a counter, got {other:?}"),
        };
        assert_eq!(
            value(LOCAL),
            i128::from(local),
            "round {round}: local counter exact"
        );
        assert_eq!(
            value(REMOTE),
            i128::from(remote),
            "round {round}: replicated counter exact"
        );
        // The logs hold each seq exactly once, in order.
        for (origin, last) in [(RegionId::new(0), local), (RegionId::new(1), remote)] {
            let log = engine
                .storage()
                .read_log(origin, 1, usize::MAX)
                .expect("read the log");
            let seqs: Vec<u64> = log.iter().map(|w| w.seq).collect();
            assert_eq!(
                seqs,
                (1..=last).collect::<Vec<_>>(),
                "round {round}: log of {origin}"
            );
        }
        last_ack = (local, remote);
    }
}
