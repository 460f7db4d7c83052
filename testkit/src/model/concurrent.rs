//! Concurrent harness: an op list split over 2-3 threads, then invariants checked at rest.
//!
//! What is checked once all threads have joined (no expiry: the clock never moves):
//! - the table's own invariants (`SessionCache::check_invariants`);
//! - `len()` equals the number of ids `contains` finds, and `stats().entries`;
//! - `len() <= capacity()` when bounded (the cache is quiescent);
//! - per object: times it entered the cache (`try_add` said Inserted/Replaced) ==
//!   times it left (`on_remove` calls for it, any cause) + (1 if it is the object cached now);
//! - per id: Inserted results − non-Replaced exits == (1 if the id is cached now): the id is
//!   never cached twice, nothing vanished without a callback;
//! - exactly-once removal: the successful `take`/`remove`/`remove_id` calls number exactly the
//!   `on_remove(Removed)` calls, and each object comes back from `take` at most once per entry;
//! - `Replaced` results == `Replaced` callbacks; evicted objects are marked not resumable;
//! - the counters in `stats()` agree with what the threads observed;
//! - after drop + `flush_deferred()`, every `Arc` was released exactly once.

use super::{Bytes, Cause, EventLog, Registry, TestSession, IDS};
use session_cache::{Added, ManualClock, RemovalCause, SessionCache};
use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

pub const MAX_OPS_PER_THREAD: usize = 24;

#[derive(Debug, Clone)]
pub enum COp {
    /// `try_add` of an object (fresh, or one this thread added before: an identical re-add).
    Add(Arc<TestSession>),
    Remove(Arc<TestSession>),
    RemoveId(usize),
    Take(usize),
    Get(usize),
    GetWith(usize),
    Contains(usize),
    Clear,
    FlushExpired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CRes {
    Added(Added),
    Bool(bool),
    Obj(Option<u32>),
    Count(usize),
    Unit,
}

pub struct Plan {
    pub capacity: usize,
    /// The cache's hash seed, from the same byte as the capacity (its high bits).
    pub hash_seed: u64,
    pub threads: Vec<Vec<COp>>,
}

/// Decodes a plan. Objects are made up front so the threads only call the cache.
pub fn decode(data: &[u8], reg: &mut Registry) -> Plan {
    let mut b = Bytes::new(data);
    let first = b.byte();
    let capacity = first as usize % 4; // 0 = unbounded, else 1..=3
    let hash_seed = u64::from(first >> 2);
    let nthreads = 2 + b.pick(2);
    let mut threads: Vec<Vec<COp>> = vec![Vec::new(); nthreads];
    let mut last: Vec<HashMap<usize, Arc<TestSession>>> = vec![HashMap::new(); nthreads];
    // Ids are drawn from a narrow window so threads collide.
    let nid = 3;
    while !b.done() {
        let t = b.pick(nthreads);
        if threads[t].len() >= MAX_OPS_PER_THREAD {
            if threads.iter().all(|v| v.len() >= MAX_OPS_PER_THREAD) {
                break;
            }
            continue;
        }
        let id = b.pick(nid);
        let op = match b.byte() % 16 {
            0..=4 => {
                let s = reg.make(IDS[id], None);
                last[t].insert(id, s.clone());
                COp::Add(s)
            }
            5 | 6 => match last[t].get(&id) {
                Some(s) => COp::Add(s.clone()),
                None => {
                    let s = reg.make(IDS[id], None);
                    last[t].insert(id, s.clone());
                    COp::Add(s)
                }
            },
            7 => COp::Remove(match last[t].get(&id) {
                Some(s) => s.clone(),
                None => reg.make(IDS[id], None),
            }),
            8 => COp::RemoveId(id),
            9 | 10 => COp::Take(id),
            11 | 12 => COp::Get(id),
            13 => COp::GetWith(id),
            14 => COp::Contains(id),
            _ => {
                if b.byte() < 32 {
                    COp::Clear
                } else {
                    COp::FlushExpired
                }
            }
        };
        threads[t].push(op);
    }
    Plan {
        capacity,
        hash_seed,
        threads,
    }
}

fn run_one(c: &SessionCache<TestSession>, op: &COp) -> CRes {
    match op {
        COp::Add(s) => CRes::Added(c.try_add(s.clone()).expect("valid id rejected")),
        COp::Remove(s) => CRes::Bool(c.remove(s)),
        COp::RemoveId(i) => CRes::Bool(c.remove_id(IDS[*i])),
        COp::Take(i) => CRes::Obj(c.take(IDS[*i]).map(|s| s.serial)),
        COp::Get(i) => CRes::Obj(c.get(IDS[*i]).map(|s| s.serial)),
        COp::GetWith(i) => CRes::Obj(c.get_with(IDS[*i], |s| s.serial)),
        COp::Contains(i) => CRes::Bool(c.contains(IDS[*i])),
        COp::Clear => {
            c.clear();
            CRes::Unit
        }
        COp::FlushExpired => CRes::Count(c.flush_expired()),
    }
}

/// Decodes `data`, runs it on 2-3 threads and checks the invariants at rest. Panics on failure.
pub fn run_concurrent(data: &[u8]) {
    let mut reg = Registry::default();
    let plan = decode(data, &mut reg);
    let log: EventLog = Arc::default();
    let l = log.clone();
    let cache = SessionCache::<TestSession>::builder()
        .capacity(plan.capacity)
        .hash_seed(plan.hash_seed)
        .timeout(Duration::from_secs(300))
        .clock(ManualClock::new())
        .max_id_len(super::MAX_ID_LEN)
        .on_remove(move |s: &Arc<TestSession>, c: RemovalCause| {
            l.lock().unwrap().push((s.serial, c.into()))
        })
        .build();
    let barrier = Barrier::new(plan.threads.len());
    let results: Vec<Vec<CRes>> = std::thread::scope(|sc| {
        let hs: Vec<_> = plan
            .threads
            .iter()
            .map(|ops| {
                let (cache, barrier) = (&cache, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    let r: Vec<CRes> = ops.iter().map(|op| run_one(cache, op)).collect();
                    session_cache::flush_deferred();
                    r
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    check_at_rest(&plan, &results, &cache, &log, &reg);
    drop(cache);
    drop(plan);
    reg.check_released_exactly_once("concurrent");
}

fn check_at_rest(
    plan: &Plan,
    results: &[Vec<CRes>],
    cache: &SessionCache<TestSession>,
    log: &EventLog,
    reg: &Registry,
) {
    let ctx = || {
        let mut s = format!("capacity {}\n", plan.capacity);
        for (t, (ops, rs)) in plan.threads.iter().zip(results).enumerate() {
            s += &format!("thread {t}:\n");
            for (o, r) in ops.iter().zip(rs) {
                s += &format!("  {o:?} -> {r:?}\n");
            }
        }
        s += &format!("on_remove log: {:?}\n", log.lock().unwrap());
        s
    };
    cache.check_invariants();
    let len = cache.len();
    let cached: Vec<Option<u32>> = (0..IDS.len())
        .map(|i| {
            let c = cache.contains(IDS[i]);
            let g = cache.get_with(IDS[i], |s| {
                assert_eq!(s.id, IDS[i], "get_with returned a session with another id");
                s.serial
            });
            assert_eq!(
                c,
                g.is_some(),
                "contains and get_with disagree on id {i}\n{}",
                ctx()
            );
            g
        })
        .collect();
    let n_cached = cached.iter().filter(|c| c.is_some()).count();
    assert_eq!(
        len,
        n_cached,
        "len() = {len} but {n_cached} ids are found\n{}",
        ctx()
    );
    if plan.capacity > 0 {
        assert!(
            len <= plan.capacity,
            "len() = {len} > capacity {} at rest\n{}",
            plan.capacity,
            ctx()
        );
    }
    let events = log.lock().unwrap().clone();
    let nobj = reg.objs.len();
    let mut entered = vec![0usize; nobj];
    let mut left = vec![0usize; nobj];
    let mut taken = vec![0usize; nobj];
    let (mut inserted, mut replaced, mut removed_ok, mut hits, mut lookups) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut id_inserted = vec![0i64; IDS.len()];
    let mut id_left = vec![0i64; IDS.len()];
    for (ops, rs) in plan.threads.iter().zip(results) {
        for (op, r) in ops.iter().zip(rs) {
            match (op, r) {
                (COp::Add(s), CRes::Added(a)) => match a {
                    Added::Inserted => {
                        entered[s.serial as usize] += 1;
                        inserted += 1;
                        id_inserted[IDS.iter().position(|i| *i == s.id.as_slice()).unwrap()] += 1;
                    }
                    Added::Replaced => {
                        entered[s.serial as usize] += 1;
                        replaced += 1;
                    }
                    Added::AlreadyCached => {}
                },
                (COp::Remove(_) | COp::RemoveId(_), CRes::Bool(true)) => removed_ok += 1,
                (COp::Take(i), CRes::Obj(o)) => {
                    lookups += 1;
                    if let Some(s) = o {
                        assert_eq!(
                            reg.objs[*s as usize].id, IDS[*i],
                            "take returned a session with another id"
                        );
                        taken[*s as usize] += 1;
                        removed_ok += 1;
                        hits += 1;
                    }
                }
                (COp::Get(i) | COp::GetWith(i), CRes::Obj(o)) => {
                    lookups += 1;
                    if let Some(s) = o {
                        assert_eq!(
                            reg.objs[*s as usize].id, IDS[*i],
                            "get returned a session with another id"
                        );
                        hits += 1;
                    }
                }
                (COp::FlushExpired, CRes::Count(n)) => {
                    assert_eq!(
                        *n, 0,
                        "flush_expired removed entries though nothing can expire"
                    )
                }
                _ => {}
            }
        }
    }
    let mut by_cause: HashMap<Cause, u64> = HashMap::new();
    let mut removed_of = vec![0usize; nobj];
    for (s, c) in &events {
        let s = *s as usize;
        left[s] += 1;
        *by_cause.entry(*c).or_default() += 1;
        let idx = IDS
            .iter()
            .position(|i| *i == reg.objs[s].id.as_slice())
            .unwrap();
        if *c != Cause::Replaced {
            id_left[idx] += 1;
        }
        if *c == Cause::Removed {
            removed_of[s] += 1;
        }
        if *c == Cause::Evicted || *c == Cause::Cleared {
            assert!(
                reg.objs[s].marked(),
                "#{s} left by {c:?} but is not marked not resumable\n{}",
                ctx()
            );
        }
        assert!(
            *c != Cause::Expired && *c != Cause::Other,
            "unexpected cause {c:?}\n{}",
            ctx()
        );
    }
    for s in 0..nobj {
        let now = cached.iter().filter(|c| **c == Some(s as u32)).count();
        assert_eq!(
            entered[s],
            left[s] + now,
            "#{s}: entered the cache {} times, left {} times, cached now: {now}\n{}",
            entered[s],
            left[s],
            ctx()
        );
        assert!(
            taken[s] <= removed_of[s],
            "#{s} taken {} times but only {} Removed callbacks\n{}",
            taken[s],
            removed_of[s],
            ctx()
        );
    }
    for i in 0..IDS.len() {
        let now = cached[i].is_some() as i64;
        assert_eq!(
            id_inserted[i] - id_left[i],
            now,
            "id {i}: {} inserts, {} exits, cached now: {now}\n{}",
            id_inserted[i],
            id_left[i],
            ctx()
        );
    }
    let cause = |c| by_cause.get(&c).copied().unwrap_or(0);
    assert_eq!(
        removed_ok,
        cause(Cause::Removed),
        "successful take/remove calls != Removed callbacks\n{}",
        ctx()
    );
    assert_eq!(
        replaced,
        cause(Cause::Replaced),
        "Replaced results != Replaced callbacks\n{}",
        ctx()
    );
    let st = cache.stats();
    // The final get_with calls above also count as lookups.
    let final_hits = n_cached as u64;
    let final_misses = (IDS.len() - n_cached) as u64;
    assert_eq!(st.entries, len, "stats.entries");
    assert_eq!(st.inserts, inserted, "stats.inserts\n{}", ctx());
    assert_eq!(st.replacements, replaced, "stats.replacements\n{}", ctx());
    assert_eq!(
        st.cache_full,
        cause(Cause::Evicted),
        "stats.cache_full\n{}",
        ctx()
    );
    assert_eq!(st.hits, hits + final_hits, "stats.hits\n{}", ctx());
    assert_eq!(
        st.misses,
        lookups - hits + final_misses,
        "stats.misses\n{}",
        ctx()
    );
    assert_eq!(st.timeouts, 0, "stats.timeouts");
    assert_eq!(st.removals, removed_ok, "stats.removals\n{}", ctx());
}
