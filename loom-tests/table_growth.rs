//! Growth racing writers: inserts that double the bucket array and split buckets race a remove
//! and a replace on keys being moved. Under loom the table starts with 2 buckets of 2 slots and
//! grows past 1 entry per bucket: the racing thread's first add starts a growth (hangs the
//! next table) and its second add migrates every bucket, while the main thread, which may
//! have located its bucket before the growth began, writes.

use std::sync::Arc;

use loom::thread;
use session_cache::SessionCache;

use crate::support::{model, S};

fn unbounded() -> Arc<SessionCache<S>> {
    Arc::new(SessionCache::builder().capacity(0).build())
}

#[test]
fn t2_remove_races_a_table_split() {
    model(|drops| {
        let cache = unbounded();
        cache.add(drops.session(b"k1", 1));
        cache.add(drops.session(b"k2", 2));
        let c2 = cache.clone();
        let (s3, s4) = (drops.session(b"k3", 3), drops.session(b"k4", 4));
        let grower = thread::spawn(move || c2.add(s3) && c2.add(s4));
        let removed = cache.remove_id(b"k1");
        assert!(grower.join().unwrap());
        assert!(removed, "k1 was cached before both calls");
        assert!(!cache.contains(b"k1"), "a remove during a split stays done");
        for k in [&b"k2"[..], b"k3", b"k4"] {
            assert!(cache.contains(k));
        }
        assert_eq!(cache.len(), 3);
    });
}

#[test]
fn t2_replace_races_a_table_split() {
    model(|drops| {
        let cache = unbounded();
        cache.add(drops.session(b"k1", 1));
        cache.add(drops.session(b"k2", 2));
        let c2 = cache.clone();
        let (s3, s4) = (drops.session(b"k3", 3), drops.session(b"k4", 4));
        let grower = thread::spawn(move || c2.add(s3) && c2.add(s4));
        let replaced = cache.add(drops.session(b"k1", 10));
        assert!(grower.join().unwrap() && replaced);
        assert_eq!(cache.len(), 4);
        assert_eq!(
            cache.get(b"k1").unwrap().serial,
            10,
            "the replacement survived the split"
        );
        assert_eq!(cache.stats().replacements, 1);
    });
}
