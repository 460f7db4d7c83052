//! A fleet of TLS servers in one process: three rustls nodes on 127.0.0.1, each with its own
//! local session cache, sharing one Redis server (started here from PATH, without
//! persistence, stopped at exit) through the fleet tier. One client connects to the nodes in
//! turn (round-robin), so every resumption happens on a node other than the one before it.
//! Prints the cross-node resumption ratio per TLS version and each node's statistics.
//!
//!     cargo run --release --example fleet --features redis,rustls [-- -n 300 --nodes 3]
//!
//! Needs `redis-server` (Debian: `apt-get install redis-server`).

#[path = "support/redis_server.rs"]
mod redis_server;

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::HandshakeKind;
use session_cache::integrations::rustls::RustlsServerStore;
use session_cache::remote::RedisTier;
use session_cache::SessionCache;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Node {
    addr: SocketAddr,
    store: Arc<RustlsServerStore>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(config: &rustls::ServerConfig, store: Arc<RustlsServerStore>) -> Res<Self> {
        let mut config = config.clone();
        config.session_storage = store.clone();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut tcp) = tcp else { continue };
                let _ = tcp.set_nodelay(true);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                if tls.write_all(b"!").is_err() {
                    continue;
                }
                let mut buf = [0u8; 64];
                while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            }
        });
        Ok(Self {
            addr,
            store,
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(TcpStream::connect(self.addr));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

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

fn redis_server_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
}

fn main() -> Res<()> {
    let mut handshakes = 300usize;
    let mut nodes_n = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => handshakes = args.next().ok_or("-n needs a number")?.parse()?,
            "--nodes" => nodes_n = args.next().ok_or("--nodes needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other} (use -n N, --nodes N)").into()),
        }
    }
    let nodes_n = nodes_n.clamp(2, 8);
    if !redis_server_on_path() {
        eprintln!(
            "the fleet example needs redis-server, which is not on PATH; install the package: {}",
            redis_server::INSTALL
        );
        std::process::exit(1);
    }
    let redis = redis_server::RedisServer::start();
    println!(
        "session-cache fleet demo: {nodes_n} rustls nodes sharing redis-server on {}, \
         {handshakes} round-robin handshakes per TLS version",
        redis.url()
    );

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS12, &TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;

    // Every node: its own local cache, the same namespace and key on the shared server. (A real
    // fleet takes the key from its secret store; every node needs the same one.)
    let fleet_key = *b"fleet-demo key: not a secret!!!!";
    let mut nodes = Vec::new();
    for _ in 0..nodes_n {
        let tier = RedisTier::builder(&redis.url())
            .namespace("fleet-demo")
            .encryption_key(fleet_key)
            .read_budget(Duration::from_millis(20))
            .build()?;
        let cache = SessionCache::builder()
            .capacity(20_480)
            .remote(tier)
            .build();
        let start = Instant::now();
        while !cache.sync_remote() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let store = Arc::new(RustlsServerStore::with_cache(cache));
        nodes.push(Node::start(&server_config, store)?);
    }

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    for (label, version) in [("TLS 1.2", &TLS12), ("TLS 1.3", &TLS13)] {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.resumption = Resumption::in_memory_sessions(64);
        let config = Arc::new(config);
        let start = Instant::now();
        let mut resumed = 0;
        for i in 0..handshakes {
            let node = &nodes[i % nodes_n];
            if connect(&config, node.addr)? == Some(HandshakeKind::Resumed) {
                resumed += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let cross = handshakes.saturating_sub(1).max(1);
        println!(
            "{label}: {handshakes} handshakes in {secs:.2} s, resumed on another node \
             {resumed}/{cross} ({:.1} %)",
            100.0 * resumed as f64 / cross as f64
        );
    }

    for (i, node) in nodes.iter_mut().enumerate() {
        node.stop();
        let s = node.store.stats();
        let r = node
            .store
            .cache()
            .remote_stats()
            .ok_or("node without a tier")?;
        println!(
            "node {i}: local entries={} hits={} misses={} inserts={} removals={} | redis \
             hits={} misses={} writes={} dropped_writes={} errors={} timeouts={} rejected={} \
             decrypt_failures={}",
            s.entries,
            s.hits,
            s.misses,
            s.inserts,
            s.removals,
            r.hits,
            r.misses,
            r.writes,
            r.dropped_writes,
            r.errors,
            r.timeouts,
            r.rejected,
            r.decrypt_failures
        );
    }
    drop(redis);
    Ok(())
}
