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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use redis_server::RedisServer;
use session_cache::remote::RedisTier;
use session_cache::SessionCache;

const GREETING: &str = "hello from a fleet node";

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

struct Node {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
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
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(TcpStream::connect(("127.0.0.1", self.port)));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One s_client connection that waits for the greeting, then closes cleanly; its stdout.
fn s_client(port: u16, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-servername")
        .arg("localhost")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run the system `openssl` binary ({e}); install it (apt-get install openssl)")
        });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        out.push_str(&line);
        let done = line.contains(GREETING);
        line.clear();
        if done {
            break;
        }
    }
    drop(child.stdin.take());
    reader.read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(
        out.contains(GREETING) && status.success(),
        "s_client failed: {status}\n{out}"
    );
    out
}

fn reused(out: &str) -> bool {
    let reused = out.lines().filter(|l| l.starts_with("Reused, ")).count();
    let new = out.lines().filter(|l| l.starts_with("New, ")).count();
    assert_eq!(reused + new, 1, "{out}");
    reused == 1
}

fn sess_file(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("session-cache-fleet-{}-{name}", std::process::id()))
        .display()
        .to_string()
}

/// The scenario, given two nodes and a way to wait until a node's writes reached Redis.
fn cross_node(a: u16, b: u16, sync_a: &dyn Fn(), name: &str) {
    // TLS 1.2: the session made on A is reused on B.
    let f = sess_file(&format!("{name}-12.pem"));
    assert!(!reused(&s_client(
        a,
        &["-tls1_2", "-no_ticket", "-sess_out", &f]
    )));
    sync_a();
    assert!(
        reused(&s_client(b, &["-tls1_2", "-no_ticket", "-sess_in", &f])),
        "TLS 1.2 session from A not reused on B"
    );
    assert!(
        reused(&s_client(b, &["-tls1_2", "-no_ticket", "-sess_in", &f])),
        "TLS 1.2 resumes again"
    );
    std::fs::remove_file(&f).unwrap();

    // TLS 1.3: the ticket from A resumes once on B, then nowhere.
    let f = sess_file(&format!("{name}-13.pem"));
    assert!(!reused(&s_client(a, &["-tls1_3", "-sess_out", &f])));
    sync_a();
    assert!(
        reused(&s_client(b, &["-tls1_3", "-sess_in", &f])),
        "TLS 1.3 ticket from A did not resume on B"
    );
    assert!(
        !reused(&s_client(b, &["-tls1_3", "-sess_in", &f])),
        "a used ticket resumed again on B"
    );
    assert!(
        !reused(&s_client(a, &["-tls1_3", "-sess_in", &f])),
        "a ticket used on B resumed on A"
    );
    std::fs::remove_file(&f).unwrap();
}

fn certificate() -> (Vec<u8>, Vec<u8>, String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.der().to_vec(),
        ck.signing_key.serialize_der(),
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
    )
}

#[test]
fn rustls_nodes_resume_each_others_sessions_and_tickets_once() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::version::{TLS12, TLS13};
    use session_cache::integrations::rustls::RustlsServerStore;

    let redis = RedisServer::start();
    let (cert, key, _, _) = certificate();
    let node = |store: Arc<RustlsServerStore>| {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&TLS12, &TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
        )
        .unwrap();
        config.session_storage = store;
        let config = Arc::new(config);
        Node::start(move |mut tcp| {
            let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            if tls.write_all(format!("{GREETING}\n").as_bytes()).is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            tls.conn.send_close_notify();
            let _ = tls.flush();
        })
    };
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
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslMethod, SslOptions};
    use openssl::x509::X509;
    use session_cache::integrations::openssl::OpensslExternalCache;

    let redis = RedisServer::start();
    let (_, _, cert, key) = certificate();
    let node = |adapter: &OpensslExternalCache| {
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor
            .set_certificate(&X509::from_pem(cert.as_bytes()).unwrap())
            .unwrap();
        acceptor
            .set_private_key(&PKey::private_key_from_pem(key.as_bytes()).unwrap())
            .unwrap();
        acceptor.set_options(SslOptions::IGNORE_UNEXPECTED_EOF);
        adapter.install(&mut acceptor).unwrap();
        let acceptor = acceptor.build();
        Node::start(move |tcp| {
            let Ok(mut tls) = acceptor.accept(tcp) else {
                return;
            };
            if tls.write_all(format!("{GREETING}\n").as_bytes()).is_ok() {
                let mut buf = [0u8; 1024];
                while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            }
            let _ = tls.shutdown();
        })
    };
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
