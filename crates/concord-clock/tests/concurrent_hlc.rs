//! Concurrency tests for `Hlc`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use concord_clock::{Hlc, HlcTime, ManualClock, WallTime};

const START_MICROS: i64 = 1_795_463_387_000_000;
const PER_THREAD: usize = 20_000;

fn run_two_threads(hlc: &Arc<Hlc>) -> Vec<Vec<HlcTime>> {
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let hlc = Arc::clone(hlc);
            thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|_| hlc.now().expect("clock in range, counter not exhausted"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect()
}

fn assert_unique_and_per_thread_increasing(per_thread: &[Vec<HlcTime>]) {
    let mut all = HashSet::new();
    for seq in per_thread {
        for pair in seq.windows(2) {
            assert!(pair[1] > pair[0], "{} not > {}", pair[1], pair[0]);
        }
        for t in seq {
            assert!(all.insert(*t), "duplicate timestamp {t}");
        }
    }
    assert_eq!(all.len(), per_thread.iter().map(Vec::len).sum::<usize>());
}

#[test]
fn two_threads_calling_now_get_unique_timestamps_with_frozen_clock() {
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(START_MICROS)));
    let hlc = Arc::new(Hlc::new(clock, Duration::ZERO));
    let results = run_two_threads(&hlc);
    assert_unique_and_per_thread_increasing(&results);
    let max = results.iter().flatten().max().copied().unwrap();
    assert_eq!(hlc.last(), max);
}

#[test]
fn two_threads_calling_now_get_unique_timestamps_while_clock_jumps() {
    let clock = Arc::new(ManualClock::new(WallTime::from_micros(START_MICROS)));
    let hlc = Arc::new(Hlc::new(clock.clone(), Duration::ZERO));
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let clock = Arc::clone(&clock);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Alternate forwards and backwards jumps of up to ~50 ms.
                let offset = if i % 2 == 0 {
                    i % 50_000
                } else {
                    -(i % 50_000)
                };
                clock.set(WallTime::from_micros(START_MICROS + offset));
                i += 997;
                thread::yield_now();
            }
        })
    };
    let results = run_two_threads(&hlc);
    stop.store(true, Ordering::Relaxed);
    mover.join().unwrap();
    assert_unique_and_per_thread_increasing(&results);
}
