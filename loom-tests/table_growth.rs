//! Growth racing writers: inserts that double the bucket array and split buckets race a remove
//! and a replace on keys being moved. Under loom an unbounded cache starts with one bucket and
//! doubles past 4 entries per bucket: the racing thread's first add (the fifth entry) hangs the
//! next table and its second add migrates the bucket, while the main thread, which may have
//! located its bucket before the growth began, writes. Each model checks the table did grow.

use std::sync::Arc;

use loom::thread;
use session_cache::SessionCache;

use crate::{counted, model_growth, TestSession};

/// An unbounded cache holding k1..k4.
fn four() -> Arc<SessionCache<TestSession>> {
    let cache = Arc::new(SessionCache::builder().capacity(0).build());
    for (i, k) in [b"k1", b"k2", b"k3", b"k4"].iter().enumerate() {
        cache.add(counted(&k[..], i as u32));
    }
    assert_eq!(cache.bucket_count(), 1);
    cache
}

#[test]
fn tg_remove_races_a_table_split() {
    model_growth("tg_remove_races_a_table_split", || {
        let cache = four();
        let c2 = cache.clone();
        let (s5, s6) = (counted(b"k5", 5), counted(b"k6", 6));
        let grower = thread::spawn(move || c2.add(s5) && c2.add(s6));
        let removed = cache.remove_id(b"k1");
        assert!(grower.join().unwrap());
        assert!(removed, "k1 was cached before both calls");
        assert!(!cache.contains(b"k1"), "a remove during a split stays done");
        for k in [&b"k2"[..], b"k3", b"k4", b"k5", b"k6"] {
            assert!(cache.contains(k));
        }
        assert_eq!(cache.len(), 5);
        // If the remove came first, the growth began only at k6 and the split waits for the
        // next insert (inserts migrate before they insert): one more add finishes it.
        cache.add(counted(b"k7", 7));
        assert_eq!(cache.bucket_count(), 2, "the table doubled");
        assert!(!cache.contains(b"k1"), "still removed after the split");
        cache.check_invariants();
    });
}

#[test]
fn tg_replace_races_a_table_split() {
    model_growth("tg_replace_races_a_table_split", || {
        let cache = four();
        let c2 = cache.clone();
        let (s5, s6) = (counted(b"k5", 5), counted(b"k6", 6));
        let grower = thread::spawn(move || c2.add(s5) && c2.add(s6));
        let replaced = cache.add(counted(b"k1", 10));
        assert!(grower.join().unwrap() && replaced);
        assert_eq!(cache.len(), 6);
        assert_eq!(
            cache.get(b"k1").unwrap().serial,
            10,
            "the replacement survived the split"
        );
        assert_eq!(cache.stats().replacements, 1);
        cache.add(counted(b"k7", 7));
        assert_eq!(cache.bucket_count(), 2, "the table doubled");
        assert_eq!(
            cache.get(b"k1").unwrap().serial,
            10,
            "still the replacement"
        );
        cache.check_invariants();
    });
}
