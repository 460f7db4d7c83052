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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the servers send after the handshake; s_client echoes it to stdout. In TLS 1.3 the
/// server's tickets precede it, so seeing it means s_client has processed them.
const GREETING: &str = "hello from the session-cache test server";

/// A self-signed certificate for `localhost`: (cert DER, PKCS#8 key DER, cert PEM, key PEM).
fn certificate() -> (Vec<u8>, Vec<u8>, String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.der().to_vec(),
        ck.signing_key.serialize_der(),
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
    )
}

/// A loopback server running `handle` for each connection, one at a time, until stopped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(handle: impl Fn(TcpStream) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                // A safety net so a stuck client cannot hang the test, not a timing assertion.
                tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                tcp.set_write_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                handle(tcp);
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting and waits until the last connection has been fully handled.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        drop(TcpStream::connect(("127.0.0.1", self.port)));
        self.thread.take().unwrap().join().unwrap();
    }
}

/// The output of one s_client run.
struct Client {
    stdout: String,
}

impl Client {
    fn count(&self, prefix: &str) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
    fn new_handshakes(&self) -> usize {
        self.count("New, ")
    }
    fn reused(&self) -> usize {
        self.count("Reused, ")
    }
    fn tickets(&self) -> usize {
        self.count("Post-Handshake New Session Ticket arrived")
    }
}

fn s_client(port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-servername")
        .arg("localhost")
        .args(args);
    cmd
}

fn spawn_error(e: std::io::Error) -> ! {
    panic!("cannot run the system `openssl` binary ({e}); install it (apt-get install openssl)")
}

/// `-reconnect`: 1 + 5 connections, stdin at EOF.
fn run_reconnect(port: u16, args: &[&str]) -> Client {
    let out = s_client(port, args)
        .arg("-reconnect")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| spawn_error(e));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "s_client failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Client { stdout }
}

/// One connection that stays open until the server's greeting arrived, then closes cleanly.
fn run_once(port: u16, args: &[&str]) -> Client {
    let mut child = s_client(port, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| spawn_error(e));
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        stdout.push_str(&line);
        let done = line.contains(GREETING);
        line.clear();
        if done {
            break;
        }
    }
    // EOF on stdin makes s_client send close_notify and exit.
    drop(child.stdin.take());
    reader.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        stdout.contains(GREETING) && status.success(),
        "s_client failed: {status}\n{stdout}\n{stderr}"
    );
    Client { stdout }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("session-cache-{}-{name}", std::process::id()))
}

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

fn check_tls13(first: &Client, second: &Client, third: &Client) {
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
}

fn check_tls12(client: &Client) {
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
}

#[cfg(feature = "rustls")]
mod rustls_server {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::StoresServerSessions;
    use rustls::version::{TLS12, TLS13};
    use session_cache::integrations::rustls::RustlsServerStore;

    fn start(store: Arc<RustlsServerStore>) -> Server {
        let (cert, key, _, _) = certificate();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&TLS12, &TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
        config.session_storage = store;
        let config = Arc::new(config);
        Server::start(move |mut tcp| {
            let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            // Errors just end this connection (s_client -reconnect may leave early).
            if tls.write_all(format!("{GREETING}\n").as_bytes()).is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            tls.conn.send_close_notify();
            let _ = tls.flush();
        })
    }

    #[test]
    fn tls12_session_ids_resume_on_every_reconnect() {
        let store = Arc::new(RustlsServerStore::new());
        let server = start(store.clone());
        let client = run_reconnect(server.port, &["-tls1_2", "-no_ticket"]);
        server.stop();
        check_tls12(&client);
        let stats = store.stats();
        eprintln!("rustls server store: {stats:?}");
        assert_eq!(stats.inserts, 1, "{stats:?}");
        assert_eq!(stats.hits, client.reused() as u64, "{stats:?}");
        assert_eq!((stats.misses, stats.entries), (0, 1), "{stats:?}");
    }

    #[test]
    fn tls13_tickets_resume_once() {
        let store = Arc::new(RustlsServerStore::new());
        let server = start(store.clone());
        let (first, second, third) = tls13_sequence(server.port, "rustls13.pem");
        server.stop();
        check_tls13(&first, &second, &third);
        let stats = store.stats();
        eprintln!("rustls server store: {stats:?}");
        let tickets = (first.tickets() + second.tickets() + third.tickets()) as u64;
        assert_eq!(stats.inserts, tickets, "{stats:?}");
        assert_eq!(stats.hits, 1, "{stats:?}");
        assert_eq!(stats.misses, 1, "{stats:?}");
        assert_eq!(stats.entries as u64, tickets - 1, "{stats:?}");
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
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslMethod, SslOptions};
    use openssl::x509::X509;
    use session_cache::integrations::openssl::OpensslExternalCache;

    fn start(cache: &OpensslExternalCache) -> Server {
        let (_, _, cert, key) = certificate();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor
            .set_certificate(&X509::from_pem(cert.as_bytes()).unwrap())
            .unwrap();
        acceptor
            .set_private_key(&PKey::private_key_from_pem(key.as_bytes()).unwrap())
            .unwrap();
        acceptor.set_options(SslOptions::IGNORE_UNEXPECTED_EOF);
        cache.install(&mut acceptor).unwrap();
        let acceptor = acceptor.build();
        Server::start(move |tcp| {
            let Ok(mut tls) = acceptor.accept(tcp) else {
                return;
            };
            if tls.write_all(format!("{GREETING}\n").as_bytes()).is_ok() {
                let mut buf = [0u8; 1024];
                while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            }
            // Always shut down: OpenSSL removes (remove callback) the session of a connection
            // freed without SSL_shutdown.
            let _ = tls.shutdown();
        })
    }

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
        check_tls12(&client);
        let stats = cache.stats();
        eprintln!("OpenSSL external cache: {stats:?}");
        assert_eq!(stats.inserts, 1, "{stats:?}");
        assert_eq!(stats.hits, client.reused() as u64, "{stats:?}");
        assert_eq!((stats.misses, stats.entries), (0, 1), "{stats:?}");

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
        let (first, second, third) = tls13_sequence(server.port, "openssl13.pem");
        server.stop();
        check_tls13(&first, &second, &third);
        let stats = cache.stats();
        eprintln!("OpenSSL external cache: {stats:?}");
        let tickets = (first.tickets() + second.tickets() + third.tickets()) as u64;
        assert_eq!(stats.inserts, tickets, "{stats:?}");
        assert_eq!(stats.hits, 1, "{stats:?}");
        assert_eq!(stats.misses, 1, "{stats:?}");
        assert_eq!(stats.entries as u64, tickets - 1, "{stats:?}");
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
