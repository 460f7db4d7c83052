//! The fleet tier against a real `redis-server` (started by the test from PATH; a missing one
//! fails the test with the install command).
//!
//! Every test makes two or three "nodes" (caches with their own tier) in this process on one
//! server. Budgets are generous because the CI machine is small and shared: what is asserted is
//! the behaviour and that calls are bounded, not speed.
#![cfg(feature = "redis")]

#[path = "../examples/support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use session_cache::remote::{RedisTier, RemoteSession, RemoteStats};
use session_cache::{Session, SessionCache};

const KEY: [u8; 32] = [7; 32];
/// The secret every test session carries: it must never be found in Redis.
const SECRET: &[u8] = b"MASTER-SECRET-do-not-store-in-clear";

#[derive(Debug)]
struct Sess {
    id: Vec<u8>,
    secret: Vec<u8>,
    timeout: Option<Duration>,
}

impl Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl RemoteSession for Sess {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.secret.clone();
        v.extend_from_slice(&self.id);
        v
    }
    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
        let secret = bytes.strip_suffix(id)?.to_vec();
        Some(Sess {
            id: id.to_vec(),
            secret,
            timeout: None,
        })
    }
}

fn sess(id: &[u8]) -> Arc<Sess> {
    Arc::new(Sess {
        id: id.to_vec(),
        secret: SECRET.to_vec(),
        timeout: None,
    })
}

fn id(i: usize) -> Vec<u8> {
    format!("session-{i:06}").into_bytes()
}

fn node_with(url: &str, ns: &str, key: [u8; 32], budget: Duration) -> SessionCache<Sess> {
    let tier = RedisTier::builder(url)
        .namespace(ns)
        .encryption_key(key)
        .read_budget(budget)
        .io_timeout(Duration::from_millis(500))
        .breaker(3, Duration::from_millis(200))
        .build()
        .expect("tier");
    SessionCache::builder()
        .capacity(10_000)
        .remote(tier)
        .build()
}

/// A node with a budget large enough for a loaded 2-core machine.
fn node(server: &RedisServer) -> SessionCache<Sess> {
    let c = node_with(&server.url(), "edge", KEY, Duration::from_secs(2));
    wait_connected(&c);
    c
}

fn stats(c: &SessionCache<Sess>) -> RemoteStats {
    c.remote_stats().expect("a tier")
}

/// Waits until the node's command connection and its subscription are up.
fn wait_connected(c: &SessionCache<Sess>) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if c.sync_remote() && stats(c).subscribed {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the tier did not connect: {:?}", stats(c));
}

#[test]
fn missing_key_bad_url_and_namespace_are_errors_unreachable_is_not() {
    use session_cache::remote::RemoteError;
    assert_eq!(
        RedisTier::builder("redis://127.0.0.1:1/")
            .build()
            .unwrap_err(),
        RemoteError::MissingKey
    );
    assert!(matches!(
        RedisTier::builder("http://x/").encryption_key(KEY).build(),
        Err(RemoteError::InvalidUrl(_))
    ));
    assert!(matches!(
        RedisTier::builder("redis://127.0.0.1:1/")
            .encryption_key(KEY)
            .namespace("a:b")
            .build(),
        Err(RemoteError::InvalidNamespace(_))
    ));
    let bad_pem = RedisTier::builder("rediss://localhost:1/")
        .encryption_key(KEY)
        .tls_root_certificate(b"not a certificate".to_vec())
        .build();
    eprintln!("a root certificate that is not PEM: {bad_pem:?}");
    assert!(matches!(
        bad_pem,
        Err(RemoteError::Tls(_) | RemoteError::InvalidUrl(_))
    ));
    // Nothing listens on port 1: built, and degrades.
    let c = node_with(
        "redis://127.0.0.1:1/",
        "edge",
        KEY,
        Duration::from_millis(50),
    );
    assert!(c.add(sess(b"x")));
    assert!(c.get(b"x").is_some(), "local hits go on");
    let t = Instant::now();
    assert!(c.get(b"absent").is_none());
    assert!(c.take(b"x").is_none(), "Redis cannot confirm: no hand-out");
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(!c.sync_remote());
}

#[test]
fn a_session_added_on_one_node_resumes_on_another() {
    let server = RedisServer::start();
    let (a, b) = (node(&server), node(&server));
    wait_connected(&a);
    assert!(a.add(sess(b"s1")));
    assert!(a.sync_remote());
    let got = b.get(b"s1").expect("remote hit on B");
    assert_eq!(got.secret, SECRET);
    assert!(b.contains(b"s1"), "cached locally on B");
    let s = stats(&b);
    assert_eq!((s.hits, s.misses, s.decrypt_failures), (1, 0, 0), "{s:?}");
    // A second get on B is local: no new remote lookup.
    assert!(b.get(b"s1").is_some());
    assert_eq!(stats(&b).hits, 1);
    assert!(b.get(b"nothing").is_none());
    assert_eq!(stats(&b).misses, 1);
    assert!(stats(&a).writes >= 1);
}

#[test]
fn take_right_after_add_on_the_same_node_succeeds() {
    let server = RedisServer::start();
    let a = node(&server);
    wait_connected(&a);
    for i in 0..50 {
        let id = id(i);
        assert!(a.add(sess(&id)));
        // no sync: the write may still be queued; the ordered queue puts the take after it
        let t = a.take(&id).expect("take after add");
        assert_eq!(t.id, id);
        assert!(a.take(&id).is_none());
    }
}

#[test]
fn a_take_on_b_makes_a_take_on_a_return_none() {
    let server = RedisServer::start();
    let (a, b) = (node(&server), node(&server));
    wait_connected(&a);
    assert!(a.add(sess(b"ticket")));
    assert!(a.sync_remote());
    let on_b = b.take(b"ticket").expect("B takes it (decoded from Redis)");
    assert_eq!(on_b.secret, SECRET);
    assert!(a.contains(b"ticket"), "A still holds its local copy");
    assert!(a.take(b"ticket").is_none(), "taken on B: never again on A");
    assert!(!a.contains(b"ticket"), "the take also dropped A's copy");
    assert!(b.take(b"ticket").is_none());
}

#[test]
fn single_use_under_races_two_nodes_four_threads_each() {
    const IDS: usize = 300;
    let server = RedisServer::start();
    let nodes = [Arc::new(node(&server)), Arc::new(node(&server))];
    wait_connected(&nodes[0]);
    wait_connected(&nodes[1]);
    // Half the ids are added on each node, so both hold local copies of some.
    for i in 0..IDS {
        assert!(nodes[i % 2].add(sess(&id(i))));
    }
    assert!(nodes[0].sync_remote() && nodes[1].sync_remote());
    let winners: Arc<Vec<AtomicUsize>> = Arc::new((0..IDS).map(|_| AtomicUsize::new(0)).collect());
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let node = Arc::clone(&nodes[t % 2]);
            let winners = Arc::clone(&winners);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for k in 0..IDS {
                    // every thread walks the ids from another starting point
                    let i = (k * 7 + t * 37) % IDS;
                    if let Some(s) = node.take(&id(i)) {
                        assert_eq!(s.id, id(i));
                        winners[i].fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let unconfirmed: u64 = nodes
        .iter()
        .map(|n| {
            let s = stats(n);
            s.timeouts + s.errors + s.rejected
        })
        .sum();
    for (i, w) in winners.iter().enumerate() {
        let w = w.load(SeqCst);
        assert!(w <= 1, "id {i} was handed out {w} times");
        if unconfirmed == 0 {
            assert_eq!(
                w, 1,
                "id {i} had no winner although Redis answered every take"
            );
        }
    }
    eprintln!("takes Redis could not confirm: {unconfirmed}");
}

#[test]
fn values_are_sealed_at_rest_and_ttls_never_exceed_the_remaining_lifetime() {
    let server = RedisServer::start();
    let a = node(&server);
    wait_connected(&a);
    let lifetimes = [1u64, 5, 60, 300];
    for (i, secs) in lifetimes.iter().enumerate() {
        let s = Arc::new(Sess {
            id: id(i),
            secret: SECRET.to_vec(),
            timeout: Some(Duration::from_secs(*secs)),
        });
        assert!(a.add(s));
    }
    // An already expired session is not written.
    assert!(a.add(Arc::new(Sess {
        id: b"expired".to_vec(),
        secret: SECRET.to_vec(),
        timeout: Some(Duration::ZERO),
    })));
    assert!(a.sync_remote());
    let mut conn = server.connection();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert_eq!(keys.len(), lifetimes.len(), "one key per live session");
    for key in keys {
        let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        assert!(
            !value.windows(SECRET.len()).any(|w| w == SECRET),
            "the secret is stored in clear under {}",
            String::from_utf8_lossy(&key)
        );
        assert!(!value.windows(6).any(|w| w == b"MASTER"));
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
        let hex = String::from_utf8(key[5..].to_vec()).unwrap();
        let raw: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let i: usize = String::from_utf8(raw[8..].to_vec())
            .unwrap()
            .parse()
            .unwrap();
        assert!(pttl > 0, "a TTL is set");
        assert!(
            pttl as u64 <= lifetimes[i] * 1000,
            "TTL {pttl} ms exceeds the session's lifetime {} s",
            lifetimes[i]
        );
    }
}

#[test]
fn wrong_key_tampered_truncated_moved_and_other_namespace_are_misses_counted() {
    let server = RedisServer::start();
    let url = server.url();
    let a = node_with(&url, "edge", KEY, Duration::from_secs(2));
    wait_connected(&a);
    for i in 0..4 {
        assert!(a.add(sess(&id(i))));
    }
    assert!(a.sync_remote());
    let mut conn = server.connection();
    let key = |ns: &str, i: usize| {
        let hex: String = id(i).iter().map(|b| format!("{b:02x}")).collect();
        format!("{ns}:{hex}")
    };
    let value = |conn: &mut redis::Connection, k: &str| -> Vec<u8> {
        redis::cmd("GET").arg(k).query(conn).unwrap()
    };
    // 1: tampered (one bit of the ciphertext)
    let mut v = value(&mut conn, &key("edge", 1));
    let last = v.len() - 1;
    v[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(key("edge", 1))
        .arg(v)
        .query(&mut conn)
        .unwrap();
    // 2: truncated
    let v = value(&mut conn, &key("edge", 2));
    let _: () = redis::cmd("SET")
        .arg(key("edge", 2))
        .arg(&v[..v.len() / 2])
        .query(&mut conn)
        .unwrap();
    // 3: the value of id 0 moved under id 3
    let v = value(&mut conn, &key("edge", 0));
    let _: () = redis::cmd("SET")
        .arg(key("edge", 3))
        .arg(v.clone())
        .query(&mut conn)
        .unwrap();
    // another namespace: a value of "edge" copied to "other"
    let _: () = redis::cmd("SET")
        .arg(key("other", 0))
        .arg(v)
        .query(&mut conn)
        .unwrap();

    let b = node_with(&url, "edge", KEY, Duration::from_secs(2));
    for i in 1..4 {
        assert!(b.get(&id(i)).is_none(), "bad value {i} must be a miss");
    }
    assert_eq!(stats(&b).decrypt_failures, 3, "{:?}", stats(&b));
    assert!(b.take(&id(1)).is_none(), "a bad value is never taken");
    assert_eq!(stats(&b).decrypt_failures, 4);

    let wrong = node_with(&url, "edge", [9; 32], Duration::from_secs(2));
    assert!(wrong.get(&id(0)).is_none(), "unknown key: a miss");
    assert_eq!(stats(&wrong).decrypt_failures, 1);

    let other = node_with(&url, "other", KEY, Duration::from_secs(2));
    assert!(
        other.get(&id(0)).is_none(),
        "another namespace's value: a miss"
    );
    assert_eq!(stats(&other).decrypt_failures, 1);
    assert!(other.get(&id(1)).is_none());
    assert_eq!(
        stats(&other).misses,
        1,
        "other namespaces' sessions are not seen"
    );

    // Key rotation: a node with a new key that still accepts the old one reads id 0.
    let rotated = RedisTier::builder(&url)
        .namespace("edge")
        .encryption_key([8; 32])
        .previous_key(KEY)
        .read_budget(Duration::from_secs(2))
        .build()
        .unwrap();
    let rotated: SessionCache<Sess> = SessionCache::builder().remote(rotated).build();
    assert_eq!(
        rotated.get(&id(0)).expect("old key still opens").secret,
        SECRET
    );
}

#[test]
fn a_remove_reaches_the_copies_other_nodes_pulled() {
    let server = RedisServer::start();
    let (a, b, c) = (node(&server), node(&server), node(&server));
    wait_connected(&a);
    wait_connected(&b);
    wait_connected(&c);
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let id = id(i);
        assert!(a.add(sess(&id)));
        assert!(a.sync_remote());
        assert!(b.get(&id).is_some() && c.get(&id).is_some());
        let start = Instant::now();
        // removed on C: A's own copy and B's pulled copy must go
        assert!(c.remove_id(&id));
        loop {
            if !a.contains(&id) && !b.contains(&id) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "removal did not propagate: {:?} {:?}",
                stats(&a),
                stats(&b)
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        worst = worst.max(start.elapsed());
        assert!(b.get(&id).is_none(), "gone from Redis too");
    }
    eprintln!("fleet-wide remove: worst propagation {worst:?} over 20 removals");
    assert!(stats(&a).invalidations >= 20);
}

/// Runs `f` and asserts it returned within `bound`.
fn bounded<R>(bound: Duration, what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(took <= bound, "{what} took {took:?} (bound {bound:?})");
    r
}

/// A round of every operation under a fault: every call bounded, local sessions stay,
/// nothing handed out twice (`taken` collects every id a take returned).
fn fault_round(
    nodes: &[&SessionCache<Sess>],
    budget: Duration,
    base: usize,
    taken: &mut HashMap<Vec<u8>, usize>,
) {
    let bound = budget * 10;
    for (n, node) in nodes.iter().enumerate() {
        for k in 0..10 {
            let i = base + n * 100 + k;
            bounded(bound, "add", || assert!(node.add(sess(&id(i)))));
            bounded(bound, "local get", || {
                assert!(node.get(&id(i)).is_some(), "local hit")
            });
            bounded(bound, "remote get", || node.get(&id(i + 50_000)));
            if let Some(s) = bounded(bound, "take", || node.take(&id(base + k))) {
                *taken.entry(s.id.clone()).or_default() += 1;
            }
            bounded(bound, "remove", || node.remove_id(&id(i + 60_000)));
        }
    }
    for (id, n) in taken.iter() {
        assert!(
            *n <= 1,
            "{} handed out {n} times",
            String::from_utf8_lossy(id)
        );
    }
}

fn fault_nodes(server: &RedisServer, budget: Duration) -> (SessionCache<Sess>, SessionCache<Sess>) {
    let a = node_with(&server.url(), "edge", KEY, budget);
    let b = node_with(&server.url(), "edge", KEY, budget);
    wait_connected(&a);
    wait_connected(&b);
    (a, b)
}

const FAULT_BUDGET: Duration = Duration::from_millis(50);

/// Waits until a cross-node resumption works again.
fn wait_recovered(a: &SessionCache<Sess>, b: &SessionCache<Sess>, tag: &str) {
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(15) {
        let id = format!("recovery-{tag}-{i}").into_bytes();
        i += 1;
        a.add(sess(&id));
        if a.sync_remote() && b.get(&id).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no recovery: {:?} {:?}", stats(a), stats(b));
}

#[test]
fn fault_kill_and_restart() {
    let mut server = RedisServer::start();
    let (a, b) = fault_nodes(&server, FAULT_BUDGET);
    let mut taken = HashMap::new();
    fault_round(&[&a, &b], FAULT_BUDGET, 0, &mut taken);
    server.kill();
    fault_round(&[&a, &b], FAULT_BUDGET, 1000, &mut taken);
    let s = stats(&a);
    assert!(
        s.errors + s.timeouts + s.rejected > 0,
        "the outage shows: {s:?}"
    );
    assert!(!a.sync_remote());
    server.restart();
    wait_recovered(&a, &b, "kill");
    fault_round(&[&a, &b], FAULT_BUDGET, 2000, &mut taken);
    // The restarted server holds nothing from before: sessions only it held are misses.
    assert!(b.get(&id(1)).is_none());
}

#[test]
fn fault_freeze_with_sigstop() {
    let server = RedisServer::start();
    let (a, b) = fault_nodes(&server, FAULT_BUDGET);
    let mut taken = HashMap::new();
    fault_round(&[&a, &b], FAULT_BUDGET, 0, &mut taken);
    server.freeze();
    fault_round(&[&a, &b], FAULT_BUDGET, 1000, &mut taken);
    let s = stats(&a);
    assert!(s.timeouts + s.rejected > 0, "{s:?}");
    server.thaw();
    wait_recovered(&a, &b, "freeze");
    fault_round(&[&a, &b], FAULT_BUDGET, 2000, &mut taken);
}

#[test]
fn fault_slow_server_debug_sleep() {
    let server = RedisServer::start();
    let (a, b) = fault_nodes(&server, FAULT_BUDGET);
    let mut taken = HashMap::new();
    let sleeper = {
        let mut conn = server.connection();
        std::thread::spawn(move || {
            let _: redis::RedisResult<()> =
                redis::cmd("DEBUG").arg("SLEEP").arg("1.5").query(&mut conn);
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    fault_round(&[&a, &b], FAULT_BUDGET, 1000, &mut taken);
    sleeper.join().unwrap();
    wait_recovered(&a, &b, "sleep");
    fault_round(&[&a, &b], FAULT_BUDGET, 2000, &mut taken);
}

#[test]
fn fault_out_of_memory_noeviction() {
    let server =
        RedisServer::start_with(&["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]);
    let (a, b) = fault_nodes(&server, Duration::from_secs(2));
    // Fill the server until writes are refused.
    let mut conn = server.connection();
    let big = vec![b'x'; 64 * 1024];
    for i in 0..64 {
        if redis::cmd("SET")
            .arg(format!("filler:{i}"))
            .arg(&big)
            .query::<()>(&mut conn)
            .is_err()
        {
            break;
        }
    }
    let mut taken = HashMap::new();
    fault_round(&[&a, &b], FAULT_BUDGET * 40, 1000, &mut taken);
    assert!(a.sync_remote());
    let s = stats(&a);
    assert!(s.dropped_writes > 0, "refused writes are counted: {s:?}");
    // Lookups still work: a removal frees nothing but reads are answered.
    assert!(b.get(b"never-added").is_none());
    assert!(stats(&b).misses >= 1);
}

#[test]
fn fault_client_kill_reconnects() {
    let server = RedisServer::start();
    let (a, b) = fault_nodes(&server, FAULT_BUDGET);
    let mut taken = HashMap::new();
    fault_round(&[&a, &b], FAULT_BUDGET, 0, &mut taken);
    // B holds a pulled copy; its subscription is cut, and A removes the session at once: the
    // announcement may be lost, yet B's copy must go (dropped when B resubscribes).
    let pulled = b"pulled-before-kill".to_vec();
    assert!(a.add(sess(&pulled)));
    assert!(a.sync_remote());
    assert!(b.get(&pulled).is_some() && b.contains(&pulled));
    let mut conn = server.connection();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut conn)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    a.remove_id(&pulled);
    let start = Instant::now();
    while b.contains(&pulled) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a removal during a cut subscription was missed: {:?}",
            stats(&b)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    fault_round(&[&a, &b], FAULT_BUDGET, 1000, &mut taken);
    wait_recovered(&a, &b, "client-kill");
    // Removals still propagate after the subscriber reconnected.
    let id = b"after-kill".to_vec();
    assert!(a.add(sess(&id)));
    assert!(a.sync_remote());
    assert!(b.get(&id).is_some());
    a.remove_id(&id);
    let start = Instant::now();
    while b.contains(&id) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no propagation after reconnect"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_removal_made_while_redis_is_frozen_is_retried() {
    let server = RedisServer::start();
    let (a, b) = fault_nodes(&server, FAULT_BUDGET);
    let id = b"retry-me".to_vec();
    assert!(a.add(sess(&id)));
    assert!(a.sync_remote());
    server.freeze();
    assert!(a.remove_id(&id));
    std::thread::sleep(Duration::from_millis(700)); // the I/O thread times out and keeps it
    server.thaw();
    wait_recovered(&a, &b, "retry");
    assert!(a.sync_remote());
    let mut conn = server.connection();
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("edge:{hex}"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        exists,
        0,
        "the removal reached Redis after the outage: {:?}",
        stats(&a)
    );
    assert!(b.get(&id).is_none());
}

#[test]
fn rediss_with_a_certificate_made_by_the_test() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let dir = std::env::temp_dir().join(format!("session-cache-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tls = redis_server::Tls {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    std::fs::write(&tls.ca, ca.pem()).unwrap();
    let server = RedisServer::start_tls(&tls);
    let tier = |ns: &str| {
        RedisTier::builder(&server.url())
            .namespace(ns)
            .encryption_key(KEY)
            .read_budget(Duration::from_secs(2))
            .tls_root_certificate(ca.pem())
            .build()
            .unwrap()
    };
    let a: SessionCache<Sess> = SessionCache::builder().remote(tier("edge")).build();
    let b: SessionCache<Sess> = SessionCache::builder().remote(tier("edge")).build();
    wait_connected(&a);
    assert!(a.add(sess(b"over-tls")));
    assert!(a.sync_remote());
    assert_eq!(
        b.get(b"over-tls").expect("resumed over rediss://").secret,
        SECRET
    );
    assert!(b.take(b"over-tls").is_some());
    assert!(a.take(b"over-tls").is_none());
    // A client that does not trust the certificate never connects.
    let untrusting = RedisTier::builder(&server.url())
        .encryption_key(KEY)
        .read_budget(Duration::from_millis(100))
        .build()
        .unwrap();
    let c: SessionCache<Sess> = SessionCache::builder().remote(untrusting).build();
    assert!(c.get(b"over-tls").is_none());
    assert!(!stats(&c).connected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_tier_there_are_no_remote_stats_and_sync_is_immediate() {
    let c: SessionCache<Sess> = SessionCache::new();
    assert!(c.remote_stats().is_none());
    assert!(c.sync_remote());
}

#[test]
fn best_effort_take_falls_back_to_the_local_copy_only_when_asked() {
    let mut server = RedisServer::start();
    let tier = |best_effort: bool| {
        RedisTier::builder(&server.url())
            .encryption_key(KEY)
            .read_budget(FAULT_BUDGET)
            .take_best_effort(best_effort)
            .build()
            .unwrap()
    };
    let strict: SessionCache<Sess> = SessionCache::builder().remote(tier(false)).build();
    let lenient: SessionCache<Sess> = SessionCache::builder().remote(tier(true)).build();
    wait_connected(&strict);
    wait_connected(&lenient);
    assert!(strict.add(sess(b"t")) && lenient.add(sess(b"t2")));
    assert!(strict.sync_remote() && lenient.sync_remote());
    server.kill();
    assert!(
        strict.take(b"t").is_none(),
        "strict: Redis cannot confirm, no hand-out"
    );
    assert!(
        !strict.contains(b"t"),
        "the take still used up the local copy"
    );
    assert!(lenient.take(b"t2").is_some(), "best effort: the local copy");
    assert!(lenient.take(b"t2").is_none(), "and only once on this node");
    // Redis answering "nothing" is a confirmation even in best-effort mode.
    server.restart();
    wait_recovered(&lenient, &strict, "best-effort");
    assert!(lenient.add(sess(b"t3")));
    assert!(lenient.sync_remote());
    let mut conn = server.connection();
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let before = stats(&lenient);
    assert!(
        lenient.take(b"t3").is_none(),
        "Redis said it is gone: no local fallback ({before:?} -> {:?})",
        stats(&lenient)
    );
}

#[test]
fn a_full_queue_drops_writes_and_counts_them() {
    let server = RedisServer::start();
    let tier = RedisTier::builder(&server.url())
        .encryption_key(KEY)
        .read_budget(FAULT_BUDGET)
        .queue_capacity(4)
        .build()
        .unwrap();
    let c: SessionCache<Sess> = SessionCache::builder().remote(tier).build();
    wait_connected(&c);
    server.freeze();
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..200 {
        bounded(Duration::from_millis(100), "add", || {
            assert!(c.add(sess(&id(i))))
        });
    }
    let s = stats(&c);
    assert!(s.dropped_writes > 0, "{s:?}");
    assert_eq!(c.len(), 200, "every add succeeded locally");
    server.thaw();
}
