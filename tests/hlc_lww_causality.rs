//! LWW registers stamped by real hybrid logical clocks: whatever the clock
//! skew between regions, a write made after its region saw another write wins
//! over it, and every region converges to the same winner.

use std::sync::Arc;
use std::time::Duration;

use concord_clock::{Hlc, HlcTime, ManualClock, WallTime};
use concord_crdt::{Lww, Merge, RegionId, Stamp};
use proptest::prelude::*;

const NOON: i64 = 1_795_435_200_000_000;
const REGIONS: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    /// Region writes a new value.
    Write(usize),
    /// Region `to` receives everything region `from` holds.
    Sync { from: usize, to: usize },
    /// Every clock moves forward by some microseconds.
    Tick(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..REGIONS).prop_map(Step::Write),
        (0..REGIONS, 0..REGIONS).prop_map(|(from, to)| Step::Sync { from, to }),
        (0u32..5_000).prop_map(Step::Tick),
    ]
}

struct Region {
    clock: Arc<ManualClock>,
    hlc: Hlc,
    reg: Option<Lww<HlcTime, u32>>,
    seq: u64,
}

proptest! {
    #[test]
    fn causal_successors_win_and_regions_converge(
        skews in proptest::collection::vec(-300_000i64..300_000, REGIONS),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut regions: Vec<Region> = skews
            .iter()
            .map(|skew| {
                let clock = Arc::new(ManualClock::new(WallTime::from_micros(NOON + skew)));
                let hlc = Hlc::new(clock.clone(), Duration::from_secs(1));
                Region { clock, hlc, reg: None, seq: 0 }
            })
            .collect();
        let mut writes: Vec<Lww<HlcTime, u32>> = Vec::new();
        for step in steps {
            match step {
                Step::Write(i) => {
                    let r = &mut regions[i];
                    r.seq += 1;
                    let time = r.hlc.now().expect("clock in range");
                    let value = u32::try_from(writes.len()).expect("few writes");
                    let origin = RegionId::new(u16::try_from(i).expect("few regions"));
                    let write = Lww::new(value, Stamp::new(time, origin, r.seq).expect("small seq"));
                    // The region had seen its current value: the new write must win over it.
                    if let Some(seen) = &r.reg {
                        prop_assert!(write.stamp() > seen.stamp(), "a write made after seeing another must win");
                    }
                    r.reg = Some(write.clone());
                    writes.push(write);
                }
                Step::Sync { from, to } => {
                    if let Some(incoming) = regions[from].reg.clone() {
                        let target = &mut regions[to];
                        target.hlc.update(*incoming.stamp().time()).expect("skew within max drift");
                        match &mut target.reg {
                            Some(reg) => { reg.merge(&incoming).expect("distinct writes"); }
                            None => target.reg = Some(incoming),
                        }
                    }
                }
                Step::Tick(micros) => {
                    for r in &regions {
                        r.clock.advance(Duration::from_micros(u64::from(micros)));
                    }
                }
            }
        }
        // Full exchange: every region ends with the greatest stamp of all writes.
        let best = writes.iter().map(|w| *w.stamp()).max();
        let mut finals = Vec::new();
        for r in &regions {
            let mut reg = r.reg.clone();
            for other in &regions {
                if let (Some(mine), Some(theirs)) = (&mut reg, &other.reg) {
                    mine.merge(theirs).expect("distinct writes");
                } else if reg.is_none() {
                    reg = other.reg.clone();
                }
            }
            finals.push(reg.map(|r| *r.stamp()));
        }
        prop_assert!(finals.iter().all(|f| *f == best), "all regions converge on the greatest stamp");
    }
}
