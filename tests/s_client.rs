//! Real-client tests: a rustls server (with `RustlsServerStore`) and an OpenSSL server (with
//! `OpensslExternalCache`) run in this process on 127.0.0.1, and the system `openssl s_client`
//! resumes against them.
//!
//! * TLS 1.2, `-reconnect -no_ticket`: every one of the 5 reconnects must print `Reused`
//!   (session-id resumption through the cache's `get`).
//! * TLS 1.3, `-sess_out` then `-sess_in` twice: the first `-sess_in` must resume and the second
//!   must not (stateful tickets are single use through the cache's `take`). `-reconnect` cannot
//!   test TLS 1.3: s_client 3.0 reconnects before it reads the post-handshake tickets.
//!
//! After each scenario the cache's stats must match what s_client printed. A missing `openssl`
//! binary fails the tests (it is not a skip): `.ci/gates/integrations.sh` installs it.
#![cfg(any(feature = "rustls", feature = "openssl"))]

mod support;

use session_cache::Stats;
use support::{run_once, run_reconnect, temp_path, Client};

/// TLS 1.3 single-use check: returns (first, second, third) client runs.
fn tls13_sequence(port: u16, name: &str) -> (Client, Client, Client) {
    let sess = temp_path(name);
    let sess = sess.to_str().unwrap();
    let first = run_once(port, &["-tls1_3", "-sess_out", sess]);
    let second = run_once(port, &["-tls1_3", "-sess_in", sess]);
    let third = run_once(port, &["-tls1_3", "-sess_in", sess]);
    std::fs::remove_file(sess).unwrap();
    (first, second, third)
}

/// The three TLS 1.3 runs resumed exactly once, and the server's cache (`who`) counted that.
fn check_tls13((first, second, third): &(Client, Client, Client), who: &str, stats: &Stats) {
    for (run, c) in [
        ("-sess_out", first),
        ("-sess_in #1", second),
        ("-sess_in #2", third),
    ] {
        eprintln!(
            "s_client TLS 1.3 {run}: New={} Reused={} tickets received={}",
            c.new_handshakes(),
            c.reused(),
            c.tickets()
        );
    }
    assert_eq!(
        (first.new_handshakes(), first.reused()),
        (1, 0),
        "{}",
        first.stdout
    );
    assert!(first.tickets() >= 1, "no ticket arrived:\n{}", first.stdout);
    assert_eq!(
        (second.new_handshakes(), second.reused()),
        (0, 1),
        "the saved ticket must resume once:\n{}",
        second.stdout
    );
    assert_eq!(
        (third.new_handshakes(), third.reused()),
        (1, 0),
        "a used ticket must not resume again:\n{}",
        third.stdout
    );
    eprintln!("{who}: {stats:?}");
    let tickets = (first.tickets() + second.tickets() + third.tickets()) as u64;
    assert_eq!(stats.inserts, tickets, "{stats:?}");
    assert_eq!(stats.hits, 1, "{stats:?}");
    assert_eq!(stats.misses, 1, "{stats:?}");
    assert_eq!(stats.entries as u64, tickets - 1, "{stats:?}");
}

/// Every reconnect resumed, and the server's cache (`who`) counted one insert and a hit each.
fn check_tls12(client: &Client, who: &str, stats: &Stats) {
    eprintln!(
        "s_client TLS 1.2 -reconnect: New={} Reused={}",
        client.new_handshakes(),
        client.reused()
    );
    assert_eq!(client.new_handshakes(), 1, "{}", client.stdout);
    assert_eq!(
        client.reused(),
        5,
        "every reconnect must resume:\n{}",
        client.stdout
    );
    eprintln!("{who}: {stats:?}");
    assert_eq!(stats.inserts, 1, "{stats:?}");
    assert_eq!(stats.hits, client.reused() as u64, "{stats:?}");
    assert_eq!((stats.misses, stats.entries), (0, 1), "{stats:?}");
}

#[cfg(feature = "rustls")]
mod rustls_server {
    use super::*;
    use std::sync::Arc;

    use rustls::server::StoresServerSessions;
    use session_cache::integrations::rustls::RustlsServerStore;
    use support::rustls_server as start;

    #[test]
    fn tls12_session_ids_resume_on_every_reconnect() {
        let store = Arc::new(RustlsServerStore::new());
        let server = start(store.clone());
        let client = run_reconnect(server.port, &["-tls1_2", "-no_ticket"]);
        server.stop();
        check_tls12(&client, "rustls server store", &store.stats());
    }

    #[test]
    fn tls13_tickets_resume_once() {
        let store = Arc::new(RustlsServerStore::new());
        let server = start(store.clone());
        let runs = tls13_sequence(server.port, "rustls13.pem");
        server.stop();
        check_tls13(&runs, "rustls server store", &store.stats());
    }

    #[test]
    fn store_refuses_everything_without_server_mode() {
        let store = RustlsServerStore::new();
        store.cache().set_mode(session_cache::CacheMode::OFF);
        assert!(!store.can_cache());
        assert!(!store.put(vec![1; 32], vec![2; 8]));
        store.cache().set_mode(session_cache::CacheMode::SERVER);
        assert!(store.can_cache());
        assert!(store.put(vec![1; 32], vec![2; 8]));
        assert_eq!(store.get(&[1; 32]), Some(vec![2; 8]));
        assert_eq!(store.take(&[1; 32]), Some(vec![2; 8]));
        assert_eq!(store.take(&[1; 32]), None);
        assert_eq!(store.get(&[]), None);
        assert_eq!(store.take(&[0xff; 5000]), None);
    }
}

#[cfg(feature = "openssl")]
mod openssl_server {
    use super::*;
    use std::time::Duration;

    use openssl::ssl::{SslAcceptor, SslMethod};
    use session_cache::integrations::openssl::OpensslExternalCache;
    use support::openssl_server as start;

    #[test]
    fn tls12_session_ids_resume_on_every_reconnect() {
        // The cache's own timeout is 1 s: the session must live by its own (OpenSSL's 7200 s).
        let clock = session_cache::ManualClock::new();
        let cache = OpensslExternalCache::with_cache(
            session_cache::SessionCache::builder()
                .clock(clock.clone())
                .timeout(Duration::from_secs(1))
                .build(),
        );
        let server = start(&cache);
        let client = run_reconnect(server.port, &["-tls1_2", "-no_ticket"]);
        server.stop();
        check_tls12(&client, "OpenSSL external cache", &cache.stats());

        clock.advance(Duration::from_secs(7200));
        assert_eq!(
            cache.cache().flush_expired(),
            0,
            "expired before the session's timeout"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            cache.cache().flush_expired(),
            1,
            "not expired after the session's timeout"
        );
    }

    #[test]
    fn tls13_tickets_resume_once() {
        let cache = OpensslExternalCache::new();
        let server = start(&cache);
        let runs = tls13_sequence(server.port, "openssl13.pem");
        server.stop();
        check_tls13(&runs, "OpenSSL external cache", &cache.stats());
    }

    #[test]
    fn one_adapter_serves_one_context() {
        let cache = OpensslExternalCache::new();
        let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        cache.install(&mut a).unwrap();
        cache.install(&mut a).unwrap();
        assert_eq!(
            cache.install(&mut b),
            Err(session_cache::integrations::openssl::InstallError::OtherContext)
        );
    }
}
