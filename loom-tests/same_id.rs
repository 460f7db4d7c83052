//! Same-id adds of different objects: the id is cached once, holding one of the two, and the
//! other is released exactly once.

use std::sync::Arc;

use loom::thread;
use session_cache::SessionCache;

use crate::{counted, model, TestSession};

#[test]
fn t2_two_adds_of_one_id_exact_totals() {
    model("t2_two_adds_of_one_id_exact_totals", || {
        let cache: Arc<SessionCache<TestSession>> =
            Arc::new(SessionCache::builder().capacity(4).build());
        let a = counted(b"k", 1);
        let b = counted(b"k", 2);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.add(b));
        let ra = cache.add(a);
        let rb = t.join().unwrap();
        assert!(ra && rb, "a different object always inserts or replaces");
        assert_eq!(cache.len(), 1);
        let st = cache.stats();
        assert_eq!((st.inserts, st.replacements), (1, 1));
        let kept = cache.get(b"k").expect("cached").serial;
        assert!(kept == 1 || kept == 2);
        cache.check_invariants();
    });
}

#[test]
fn t2_get_or_add_racers_agree() {
    model("t2_get_or_add_racers_agree", || {
        let cache: Arc<SessionCache<TestSession>> =
            Arc::new(SessionCache::builder().capacity(4).build());
        let a = counted(b"k", 1);
        let b = counted(b"k", 2);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.get_or_add(b).unwrap().serial);
        let ra = cache.get_or_add(a).unwrap().serial;
        let rb = t.join().unwrap();
        assert_eq!(ra, rb, "both callers get the one cached session");
        assert_eq!(cache.get(b"k").unwrap().serial, ra);
        let st = cache.stats();
        assert_eq!((st.inserts, st.replacements, st.entries), (1, 0, 1));
        cache.check_invariants();
    });
}
