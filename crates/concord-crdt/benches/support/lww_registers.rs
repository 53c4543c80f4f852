//! The LWW merge workload both `vs_crdts` and `lww_ratio` time: a register
//! written later (time 200, value 2) merged into an earlier one (time 100,
//! value 1), on both sides.

use concord_crdt::{Lww, LwwMerge, Merge, RegionId, Stamp};
use crdts::CvRDT;

/// The earlier and later registers, Concord's and `crdts`' (a bare `u64`
/// time as the marker: its reference `LWWReg<u64, u64>`).
pub(crate) struct LwwRegisters {
    /// Concord's earlier register.
    pub(crate) earlier: Lww<u64, u64>,
    /// Concord's later register (region 1 against the earlier's 0).
    pub(crate) later: Lww<u64, u64>,
    /// `crdts`' earlier register.
    pub(crate) x_earlier: crdts::LWWReg<u64, u64>,
    /// `crdts`' later register.
    pub(crate) x_later: crdts::LWWReg<u64, u64>,
}

/// The registers, checked to merge the same way on both sides: the later
/// replaces the earlier.
pub(crate) fn lww_registers() -> LwwRegisters {
    let stamp = |time, origin| Stamp::new(time, RegionId::new(origin), 1).expect("seq in range");
    let r = LwwRegisters {
        earlier: Lww::new(1, stamp(100, 0)),
        later: Lww::new(2, stamp(200, 1)),
        x_earlier: crdts::LWWReg {
            val: 1,
            marker: 100,
        },
        x_later: crdts::LWWReg {
            val: 2,
            marker: 200,
        },
    };
    let mut merged = r.earlier.clone();
    assert_eq!(
        merged.merge(&r.later).expect("lww merge"),
        LwwMerge::Replaced
    );
    let mut x_merged = r.x_earlier.clone();
    x_merged.merge(r.x_later.clone());
    assert_eq!(*merged.value(), x_merged.val);
    r
}
