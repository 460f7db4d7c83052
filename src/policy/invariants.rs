//! The policy's invariants at rest: the table's own (`RawTable::check_invariants`), and the
//! live count agreeing with the entries the table holds, and no stripe's room hidden from
//! thieves.

use super::Policy;
use crate::Session;

impl<S: Session> Policy<S> {
    /// Panics, naming the broken rule, unless the cache is consistent. Only at rest: no
    /// operation in flight on any thread.
    pub(crate) fn check_invariants(&self) {
        let guard = self.table.pin();
        let live = self.table.check_invariants(&guard);
        drop(guard);
        // The exact count, below zero included (`len` clamps), the stripes' room taken off.
        let counted = self.counters.exact_len();
        assert_eq!(
            counted, live as isize,
            "the live count says {counted}, the table holds {live} live entries"
        );
        assert!(
            self.counters.room_is_visible(),
            "a stripe holds room with its bit in `roomy` clear: thieves would never find it"
        );
        let st = self.stats();
        assert_eq!(
            st.entries, live,
            "stats().entries says {}, the table holds {live} live entries",
            st.entries
        );
        // Every entry leaves through exactly one of these (`Stats::cleared`).
        let left = st.removals + st.cache_full + st.expired + st.cleared;
        assert_eq!(
            st.inserts.checked_sub(left),
            Some(live as u64),
            "inserts - removals - cache_full - expired - cleared != entries: {st:?}"
        );
    }
}
