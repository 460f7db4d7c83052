//! The stripes' room (src/policy/counters.rs, "The live count and each stripe's room"): a
//! removal keeps its place in its thread's stripe, and that thread's next add takes it instead
//! of counting in. Two owned stripes, one per thread (`SessionCache::loom_use_stripe`), and the
//! in-place path of a full cache on (`loom_count_in_place`), as in every other build. The other
//! model of the room, `tc_full_add_sees_an_add_that_took_room`, is in `models.rs`, beside the
//! race it repeats with stripes.

use super::World;
use loom::thread;
use session_cache::{Added, SessionCache};
use std::sync::Arc;

fn unwrap<T>(a: Arc<T>) -> T {
    Arc::try_unwrap(a).ok().expect("other clones dropped")
}

/// A remove (thread 2, stripe 1, whose bit is still set from an earlier removal whose room it
/// took back) deposits its place while an add into the full cache (main, stripe 0) steals
/// room. Either the add takes that place or it evicts, and the room left behind must stay
/// visible: a later add into the full cache finds it and evicts nothing.
// mutant: room_bit_first: a removal looks at its stripe's bit before it deposits, so a thief
//   that clears the bit in between leaves the room hidden for good
#[test]
fn tc_room_left_by_a_racing_remove_stays_visible() {
    super::model("tc_room_left_by_a_racing_remove_stays_visible", || {
        let mut w = World::default();
        let cache = Arc::new(w.cache(2));
        cache.loom_count_in_place();
        let v1 = w.sess(1, None);
        let v2 = w.sess(2, None);
        let v3 = w.sess(3, None);
        let a = w.sess(4, None);
        let b = w.sess(5, None);
        // Stripe 1: full, then a removal's room taken back by the next add (its bit stays set).
        SessionCache::<super::TestSession>::loom_use_stripe(1);
        assert!(cache.add(v1.clone()));
        assert!(cache.add(v2.clone()));
        assert!(cache.remove(&v1));
        assert!(cache.add(v3.clone()));
        SessionCache::<super::TestSession>::loom_use_stripe(0);
        let t2 = {
            let (c, v2) = (cache.clone(), v2.clone());
            thread::spawn(move || {
                SessionCache::<super::TestSession>::loom_use_stripe(1);
                c.remove(&v2)
            })
        };
        assert_eq!(cache.try_add(a.clone()).unwrap(), Added::Inserted);
        let removed = t2.join().unwrap();
        assert!(cache.len() <= 2, "capacity 2, at rest");
        // Whatever room the remove left, the next add into the cache takes it.
        let before = cache.stats().cache_full;
        let len = cache.len();
        assert_eq!(cache.try_add(b.clone()).unwrap(), Added::Inserted);
        assert_eq!(
            cache.stats().cache_full - before,
            u64::from(len == 2),
            "an add evicted while room was held (len {len} before it; remove won: {removed})"
        );
        drop((v1, v2, v3, a, b));
        w.finish(unwrap(cache));
    });
}
