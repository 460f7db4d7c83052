//! An OpenSSL server whose session cache is session-cache, through `OpensslExternalCache`.
//!
//! Starts an OpenSSL (system libssl) server on 127.0.0.1 with a self-signed certificate made at
//! start, installs the adapter (OpenSSL's internal cache off, new/get/remove callbacks on
//! session-cache, stateful tickets), then runs OpenSSL client threads that make handshakes over
//! TLS 1.2 (session ids) and TLS 1.3 (single-use stateful tickets), resuming where they can. It
//! prints handshakes per second, the resumption ratio and the cache's stats.
//!
//! ```text
//! cargo run --release --example openssl_server --features openssl -- [-n HANDSHAKES] [-t THREADS]
//! ```
//! `-n`: handshakes per protocol version (default 2000); `-t`: client threads, and as many server
//! threads (default 2). It binds 127.0.0.1 only and stops by itself.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::ssl::{
    SslAcceptor, SslConnector, SslMethod, SslOptions, SslSession, SslSessionCacheMode, SslVersion,
};
use openssl::x509::X509;
use session_cache::integrations::openssl::OpensslExternalCache;

#[path = "support/phase.rs"]
mod phase;
use phase::{run_phase, Res};

struct Args {
    handshakes: usize,
    threads: usize,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        handshakes: 2000,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Res<usize> {
            let v = it.next().ok_or_else(|| format!("{name} needs a number"))?;
            Ok(v.parse()
                .map_err(|_| format!("{name}: not a number: {v}"))?)
        };
        match flag.as_str() {
            "-n" | "--handshakes" => args.handshakes = value("-n")?,
            "-t" | "--threads" => args.threads = value("-t")?.max(1),
            "-h" | "--help" => {
                println!(
                    "usage: openssl_server [-n HANDSHAKES per TLS version (2000)] [-t THREADS (2)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other} (try --help)").into()),
        }
    }
    Ok(args)
}

thread_local! {
    /// This client thread's sessions, newest last (the client side is plain OpenSSL: sessions
    /// arrive through its new-session callback on the thread that reads them).
    static SESSIONS: RefCell<Vec<SslSession>> = const { RefCell::new(Vec::new()) };
}

fn main() -> Res<()> {
    let args = parse_args()?;

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = X509::from_pem(ck.cert.pem().as_bytes())?;
    let key = PKey::private_key_from_pem(ck.signing_key.serialize_pem().as_bytes())?;

    let cache = OpensslExternalCache::new();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    acceptor.set_certificate(&cert)?;
    acceptor.set_private_key(&key)?;
    acceptor.set_options(SslOptions::IGNORE_UNEXPECTED_EOF);
    cache.install(&mut acceptor)?;
    let acceptor = Arc::new(acceptor.build());

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = (0..args.threads)
        .map(|_| {
            let listener = listener.try_clone()?;
            let (acceptor, stop) = (acceptor.clone(), stop.clone());
            Ok(std::thread::spawn(move || serve(listener, acceptor, stop)))
        })
        .collect::<Res<_>>()?;

    println!(
        "session-cache OpenSSL external-cache demo: OpenSSL {} server on {addr}, {} client \
         thread(s), {} handshakes per TLS version",
        openssl::version::version(),
        args.threads,
        args.handshakes
    );
    for (label, version) in [
        ("TLS 1.2", SslVersion::TLS1_2),
        ("TLS 1.3", SslVersion::TLS1_3),
    ] {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        b.cert_store_mut().add_cert(cert.clone())?;
        b.set_min_proto_version(Some(version))?;
        b.set_max_proto_version(Some(version))?;
        // The client keeps its sessions itself (thread-local), not in OpenSSL's client cache.
        b.set_session_cache_mode(
            SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL_STORE,
        );
        b.set_new_session_callback(|_, session| {
            SESSIONS.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() == 8 {
                    s.remove(0);
                }
                s.push(session);
            })
        });
        let connector = Arc::new(b.build());
        let forget_sessions = || SESSIONS.with(|s| s.borrow_mut().clear());
        run_phase(
            label,
            args.handshakes,
            args.threads,
            forget_sessions,
            move || connect(&connector, version, addr),
        )?;
    }

    stop.store(true, Ordering::SeqCst);
    for _ in &servers {
        drop(TcpStream::connect(addr));
    }
    for s in servers {
        s.join().map_err(|_| "server thread panicked")?;
    }

    let s = cache.stats();
    println!(
        "server cache (OpensslExternalCache): entries={} hits={} misses={} timeouts={} inserts={} \
         removals={} cache_full={}",
        s.entries, s.hits, s.misses, s.timeouts, s.inserts, s.removals, s.cache_full
    );
    Ok(())
}

/// One client connection; true if it resumed. TLS 1.2 sessions are reused as long as they work,
/// TLS 1.3 tickets are used once (newest first).
fn connect(connector: &SslConnector, version: SslVersion, addr: SocketAddr) -> Res<bool> {
    let offer = SESSIONS.with(|s| {
        let mut s = s.borrow_mut();
        if version == SslVersion::TLS1_3 {
            s.pop()
        } else {
            s.last().cloned()
        }
    });
    let mut ssl = connector.configure()?.into_ssl("localhost")?;
    if let Some(session) = &offer {
        // SAFETY: every session in SESSIONS came from this connector's context (its new-session
        // callback), and SESSIONS is cleared when a thread starts a phase with a new connector.
        unsafe { ssl.set_session(session)? };
    }
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let mut tls = ssl.connect(tcp).map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte)?;
    let reused = tls.ssl().session_reused();
    let _ = tls.shutdown();
    Ok(reused)
}

/// A server thread: accepts until `stop`, one connection at a time.
fn serve(listener: TcpListener, acceptor: Arc<SslAcceptor>, stop: Arc<AtomicBool>) {
    for tcp in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(tcp) = tcp else { continue };
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(mut tls) = acceptor.accept(tcp) else {
            continue;
        };
        if tls.write_all(b"!").is_ok() {
            let mut buf = [0u8; 64];
            while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
        }
        // Always shut down: OpenSSL removes the session of a connection freed without it.
        let _ = tls.shutdown();
    }
}
