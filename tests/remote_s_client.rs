//! Cross-node resumption through the fleet tier with a client nobody here wrote: two server
//! nodes (rustls with `RustlsServerStore`, OpenSSL with `OpensslExternalCache`), each with its
//! own local cache and a tier on one `redis-server`; `openssl s_client` saves its session on
//! node A (`-sess_out`) and resumes on node B (`-sess_in`).
//!
//! * TLS 1.2 (session ids): the session from A is reused on B.
//! * TLS 1.3 (stateful tickets): the ticket from A resumes once on B, then neither on B nor on A.
//!
//! Missing `openssl` or `redis-server` fails the tests with the install command.
#![cfg(all(feature = "redis", feature = "rustls", feature = "openssl"))]

#[path = "../examples/support/redis_server.rs"]
mod redis_server;

mod support;

use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use session_cache::remote::RedisTier;
use session_cache::SessionCache;
use support::{run_once, temp_path};

fn tier(server: &RedisServer, ns: &str) -> RedisTier {
    RedisTier::builder(&server.url())
        .namespace(ns)
        .encryption_key([42; 32])
        .read_budget(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn cache<S: session_cache::remote::RemoteSession>(
    server: &RedisServer,
    ns: &str,
) -> SessionCache<S> {
    let c = SessionCache::builder().remote(tier(server, ns)).build();
    // Wait for the connection, so the first handshake's write is not lost to a cold start.
    for _ in 0..500 {
        if c.sync_remote() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

/// Whether one s_client connection to `port` with `args` resumed its session.
fn resumed(port: u16, args: &[&str]) -> bool {
    run_once(port, args).resumed()
}

fn sess_file(name: &str) -> String {
    temp_path(&format!("fleet-{name}")).display().to_string()
}

/// The scenario, given two nodes and a way to wait until a node's writes reached Redis.
fn cross_node(a: u16, b: u16, sync_a: &dyn Fn(), name: &str) {
    // TLS 1.2: the session made on A is reused on B.
    let f = sess_file(&format!("{name}-12.pem"));
    assert!(!resumed(a, &["-tls1_2", "-no_ticket", "-sess_out", &f]));
    sync_a();
    assert!(
        resumed(b, &["-tls1_2", "-no_ticket", "-sess_in", &f]),
        "TLS 1.2 session from A not reused on B"
    );
    assert!(
        resumed(b, &["-tls1_2", "-no_ticket", "-sess_in", &f]),
        "TLS 1.2 resumes again"
    );
    std::fs::remove_file(&f).unwrap();

    // TLS 1.3: the ticket from A resumes once on B, then nowhere.
    let f = sess_file(&format!("{name}-13.pem"));
    assert!(!resumed(a, &["-tls1_3", "-sess_out", &f]));
    sync_a();
    assert!(
        resumed(b, &["-tls1_3", "-sess_in", &f]),
        "TLS 1.3 ticket from A did not resume on B"
    );
    assert!(
        !resumed(b, &["-tls1_3", "-sess_in", &f]),
        "a used ticket resumed again on B"
    );
    assert!(
        !resumed(a, &["-tls1_3", "-sess_in", &f]),
        "a ticket used on B resumed on A"
    );
    std::fs::remove_file(&f).unwrap();
}

#[test]
fn rustls_nodes_resume_each_others_sessions_and_tickets_once() {
    use session_cache::integrations::rustls::RustlsServerStore;
    use support::rustls_server as node;

    let redis = RedisServer::start();
    let store_a = Arc::new(RustlsServerStore::with_cache(cache(&redis, "rustls")));
    let store_b = Arc::new(RustlsServerStore::with_cache(cache(&redis, "rustls")));
    let (a, b) = (node(store_a.clone()), node(store_b.clone()));
    cross_node(
        a.port,
        b.port,
        &|| assert!(store_a.cache().sync_remote()),
        "rustls",
    );
    eprintln!(
        "node A: {:?}\n{:?}",
        store_a.stats(),
        store_a.cache().remote_stats()
    );
    eprintln!(
        "node B: {:?}\n{:?}",
        store_b.stats(),
        store_b.cache().remote_stats()
    );
    assert!(store_b.cache().remote_stats().unwrap().hits >= 2);
}

#[test]
fn openssl_nodes_resume_each_others_sessions_and_tickets_once() {
    use session_cache::integrations::openssl::OpensslExternalCache;
    use support::openssl_server as node;

    let redis = RedisServer::start();
    let adapter_a = OpensslExternalCache::with_cache(cache(&redis, "openssl"));
    let adapter_b = OpensslExternalCache::with_cache(cache(&redis, "openssl"));
    let (a, b) = (node(&adapter_a), node(&adapter_b));
    cross_node(
        a.port,
        b.port,
        &|| assert!(adapter_a.cache().sync_remote()),
        "openssl",
    );
    eprintln!(
        "node A: {:?}\n{:?}",
        adapter_a.stats(),
        adapter_a.cache().remote_stats()
    );
    eprintln!(
        "node B: {:?}\n{:?}",
        adapter_b.stats(),
        adapter_b.cache().remote_stats()
    );
    assert!(adapter_b.cache().remote_stats().unwrap().hits >= 2);
}
