//! TLS session resumption through session-cache, end to end, on loopback.
//!
//! Starts a rustls server on 127.0.0.1 (self-signed certificate made at start) whose session
//! storage is a `RustlsServerStore`, then runs client threads whose session store is a
//! `RustlsClientStore`. Each client makes handshakes over TLS 1.2 (session ids, looked up with
//! `get`) and then TLS 1.3 (single-use stateful tickets, looked up with `take`), resuming where it
//! can, and the example prints handshakes per second, the resumption ratio and both caches' stats.
//!
//! ```text
//! cargo run --release --example tls_resumption --features rustls -- [-n HANDSHAKES] [-t THREADS]
//! ```
//! `-n`: handshakes per protocol version (default 2000); `-t`: client threads, and as many server
//! threads (default 2); `--no-baseline`: skip the closing comparison run (TLS 1.3 with resumption
//! off on both sides). It binds 127.0.0.1 only and stops by itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::HandshakeKind;
use session_cache::integrations::rustls::{RustlsClientStore, RustlsServerStore};

#[path = "support/phase.rs"]
mod phase;
use phase::{run_phase, Res};

struct Args {
    handshakes: usize,
    threads: usize,
    baseline: bool,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        handshakes: 2000,
        threads: 2,
        baseline: true,
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
            "--no-baseline" => args.baseline = false,
            "-h" | "--help" => {
                println!(
                    "usage: tls_resumption [-n HANDSHAKES per TLS version (2000)] \
                     [-t THREADS (2)] [--no-baseline]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other} (try --help)").into()),
        }
    }
    Ok(args)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn main() -> Res<()> {
    let args = parse_args()?;

    // Certificate, server config with session-cache as its session storage.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server_store = Arc::new(RustlsServerStore::new());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS12, &TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let server_config_for_baseline = Arc::new(server_config.clone());
    server_config.session_storage = server_store.clone();
    let server_config = Arc::new(server_config);

    let servers = Servers::start(server_config, args.threads)?;
    let addr = servers.addr;

    // Clients share one session store.
    let client_store = Arc::new(RustlsClientStore::new(64));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    println!(
        "session-cache TLS resumption demo: rustls server on {addr}, {} client thread(s), \
         {} handshakes per TLS version",
        args.threads, args.handshakes
    );
    for (label, version) in [("TLS 1.2", &TLS12), ("TLS 1.3", &TLS13)] {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.resumption = Resumption::store(client_store.clone());
        let config = Arc::new(config);
        run_phase(
            label,
            args.handshakes,
            args.threads,
            || {},
            move || Ok(connect(&config, addr)? == Some(HandshakeKind::Resumed)),
        )?;
    }

    servers.stop()?;

    let s = server_store.stats();
    println!(
        "server cache (RustlsServerStore): entries={} hits={} misses={} timeouts={} inserts={} \
         removals={} cache_full={}",
        s.entries, s.hits, s.misses, s.timeouts, s.inserts, s.removals, s.cache_full
    );
    let c = client_store.client_stats();
    let cs = client_store.stats();
    println!(
        "client cache (RustlsClientStore): servers={} tls12 hits={} misses={}, tls13 tickets \
         inserted={} taken={} missed={}",
        cs.entries,
        c.tls12_hits,
        c.tls12_misses,
        c.tickets_inserted,
        c.tickets_taken,
        c.ticket_misses
    );

    if args.baseline {
        // The same loop with resumption off on both sides, for comparison.
        let mut config = (*server_config_for_baseline).clone();
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        let servers = Servers::start(Arc::new(config), args.threads)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        let (config, addr) = (Arc::new(config), servers.addr);
        run_phase(
            "baseline, TLS 1.3 without resumption",
            args.handshakes,
            args.threads,
            || {},
            move || Ok(connect(&config, addr)? == Some(HandshakeKind::Resumed)),
        )?;
        servers.stop()?;
    }
    Ok(())
}

/// Server threads sharing one loopback listener.
struct Servers {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Servers {
    fn start(config: Arc<rustls::ServerConfig>, threads: usize) -> Res<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let listener = listener.try_clone()?;
                let (config, stop) = (config.clone(), stop.clone());
                Ok(std::thread::spawn(move || serve(listener, config, stop)))
            })
            .collect::<Res<_>>()?;
        Ok(Self {
            addr,
            stop,
            threads,
        })
    }

    fn stop(self) -> Res<()> {
        self.stop.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            // Wake each blocked acceptor so it sees the stop flag.
            drop(TcpStream::connect(self.addr));
        }
        for t in self.threads {
            t.join().map_err(|_| "server thread panicked")?;
        }
        Ok(())
    }
}

/// One client connection: handshake, read the server's byte (TLS 1.3 tickets come before it),
/// close cleanly. Returns how the handshake went.
fn connect(config: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Res<Option<HandshakeKind>> {
    let name = ServerName::try_from("localhost")?;
    let mut conn = rustls::ClientConnection::new(config.clone(), name)?;
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(conn.handshake_kind())
}

/// A server thread: accepts until `stop`, one connection at a time.
fn serve(listener: TcpListener, config: Arc<rustls::ServerConfig>, stop: Arc<AtomicBool>) {
    for tcp in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut tcp) = tcp else { continue };
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
            continue;
        };
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        // Handshake (and, in TLS 1.3, the tickets) happen on the first write.
        if tls.write_all(b"!").is_err() {
            continue;
        }
        let mut buf = [0u8; 64];
        // Until the client's close_notify (Ok(0)) or an error.
        while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
    }
}
