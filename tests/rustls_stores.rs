//! `RustlsClientStore` and `RustlsServerStore` driven by real rustls handshakes, in memory (no
//! sockets): resumption, newest-first single-use tickets, the server bound, modes and timeouts.
#![cfg(feature = "rustls")]

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::{ClientSessionStore, Resumption};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::version::{TLS12, TLS13};
use rustls::{Connection, HandshakeKind, NamedGroup, SupportedProtocolVersion};
use session_cache::integrations::rustls::{RustlsClientStore, RustlsServerStore};
use session_cache::{CacheMode, ManualClock, SessionCache};

const NAMES: [&str; 4] = ["localhost", "a.test", "b.test", "c.test"];

/// The server store, recording the keys rustls puts and takes.
#[derive(Default)]
struct Recording {
    inner: RustlsServerStore,
    puts: Mutex<Vec<Vec<u8>>>,
    takes: Mutex<Vec<Vec<u8>>>,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recording")
    }
}

impl StoresServerSessions for Recording {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.puts.lock().unwrap().push(key.clone());
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.takes.lock().unwrap().push(key.to_vec());
        self.inner.take(key)
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

struct Pki {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(NAMES.map(String::from).to_vec()).unwrap();
    Pki {
        cert: ck.cert.der().clone(),
        key: ck.signing_key.serialize_der(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(pki: &Pki, store: Arc<dyn StoresServerSessions>) -> Arc<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS12, &TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
        )
        .unwrap();
    c.session_storage = store;
    Arc::new(c)
}

fn client_config(
    pki: &Pki,
    version: &'static SupportedProtocolVersion,
    store: Arc<RustlsClientStore>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = Resumption::store(store);
    Arc::new(c)
}

/// Moves everything `from` wants to send into `to`; false if there was nothing.
fn transfer(from: &mut Connection, to: &mut Connection) -> bool {
    let mut moved = false;
    while from.wants_write() {
        let mut buf = Vec::new();
        from.write_tls(&mut buf).unwrap();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
            to.process_new_packets().unwrap();
        }
        moved = true;
    }
    moved
}

/// One full connection in memory: handshake, then a byte from the server (TLS 1.3 tickets go
/// before it, so the client has stored them when this returns).
fn connect(
    client: &Arc<rustls::ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> HandshakeKind {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut c = Connection::Client(rustls::ClientConnection::new(client.clone(), name).unwrap());
    let mut s = Connection::Server(rustls::ServerConnection::new(server.clone()).unwrap());
    while transfer(&mut c, &mut s) | transfer(&mut s, &mut c) {}
    assert!(!c.is_handshaking() && !s.is_handshaking());
    s.writer().write_all(b"!").unwrap();
    transfer(&mut s, &mut c);
    let mut byte = [0u8; 1];
    c.reader().read_exact(&mut byte).unwrap();
    match c {
        Connection::Client(c) => c.handshake_kind().unwrap(),
        Connection::Server(_) => unreachable!(),
    }
}

fn name(s: &'static str) -> ServerName<'static> {
    ServerName::try_from(s).unwrap()
}

#[test]
fn tls13_tickets_are_taken_newest_first_and_once() {
    let pki = pki();
    let server_store = Arc::new(Recording::default());
    let server = server_config(&pki, server_store.clone());
    let store = Arc::new(RustlsClientStore::new(16));
    let client = client_config(&pki, &TLS13, store.clone());

    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert!(store.kx_hint(&name("localhost")).is_some());
    assert_eq!(store.kx_hint(&name("a.test")), None);
    for _ in 0..10 {
        let newest = server_store.puts.lock().unwrap().last().unwrap().clone();
        assert_eq!(
            connect(&client, &server, "localhost"),
            HandshakeKind::Resumed
        );
        // The client offered the newest ticket it had.
        assert_eq!(server_store.takes.lock().unwrap().last().unwrap(), &newest);
    }
    let takes = server_store.takes.lock().unwrap().clone();
    assert_eq!(
        takes.iter().collect::<HashSet<_>>().len(),
        takes.len(),
        "a ticket was offered twice"
    );
    let s = server_store.inner.stats();
    assert_eq!((s.hits, s.misses), (10, 0), "{s:?}");
    let c = store.client_stats();
    assert_eq!(c.tickets_taken, 10, "{c:?}");
    assert_eq!(
        c.tickets_inserted,
        server_store.puts.lock().unwrap().len() as u64,
        "{c:?}"
    );
}

#[test]
fn tls12_session_and_kx_hint_are_remembered_and_removable() {
    let pki = pki();
    let server_store = Arc::new(RustlsServerStore::new());
    let server = server_config(&pki, server_store.clone());
    let store = Arc::new(RustlsClientStore::new(16));
    let client = client_config(&pki, &TLS12, store.clone());

    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert_eq!(
        connect(&client, &server, "localhost"),
        HandshakeKind::Resumed
    );
    assert_eq!(
        connect(&client, &server, "LOCALHOST"),
        HandshakeKind::Resumed,
        "names are case-insensitive"
    );
    assert!(store.tls12_session(&name("localhost")).is_some());
    // rustls records the key-exchange hint only after TLS 1.3 handshakes.
    assert_eq!(store.kx_hint(&name("localhost")), None);

    store.remove_tls12_session(&name("localhost"));
    assert!(store.tls12_session(&name("localhost")).is_none());
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);

    store.set_kx_hint(name("a.test"), NamedGroup::secp384r1);
    assert_eq!(store.kx_hint(&name("a.test")), Some(NamedGroup::secp384r1));
    assert_eq!(server_store.stats().hits, 2);
}

#[test]
fn servers_are_bounded_by_the_cache_capacity() {
    let pki = pki();
    let server = server_config(&pki, Arc::new(RustlsServerStore::new()));
    let store = Arc::new(RustlsClientStore::new(2));
    let client = client_config(&pki, &TLS13, store.clone());

    for n in ["a.test", "b.test", "c.test"] {
        assert_eq!(connect(&client, &server, n), HandshakeKind::Full);
    }
    let s = store.stats();
    assert_eq!(s.entries, 2, "{s:?}");
    assert_eq!(s.cache_full, 1, "{s:?}");
    // The entry expiring soonest (a.test, the first) was evicted with its tickets.
    assert_eq!(connect(&client, &server, "c.test"), HandshakeKind::Resumed);
    assert_eq!(connect(&client, &server, "a.test"), HandshakeKind::Full);
}

#[test]
fn client_modes_are_honoured() {
    let pki = pki();
    let server = server_config(&pki, Arc::new(RustlsServerStore::new()));
    let store = Arc::new(RustlsClientStore::new(16));
    let client = client_config(&pki, &TLS13, store.clone());

    // No CLIENT bit: nothing stored, nothing found.
    store.cache().set_mode(CacheMode::SERVER);
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert!(store.cache().is_empty());
    store.set_kx_hint(name("localhost"), NamedGroup::X25519);
    assert_eq!(store.kx_hint(&name("localhost")), None);

    // NO_INTERNAL_STORE: writes are dropped.
    store
        .cache()
        .set_mode(CacheMode::CLIENT | CacheMode::NO_INTERNAL_STORE);
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert!(store.cache().is_empty());

    // CLIENT: tickets are stored...
    store.cache().set_mode(CacheMode::CLIENT);
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert_eq!(store.cache().len(), 1);
    // ... but NO_INTERNAL_LOOKUP does not find them.
    store
        .cache()
        .set_mode(CacheMode::CLIENT | CacheMode::NO_INTERNAL_LOOKUP);
    assert!(store.take_tls13_ticket(&name("localhost")).is_none());
    assert_eq!(store.kx_hint(&name("localhost")), None);

    store.cache().set_mode(CacheMode::CLIENT);
    assert_eq!(
        connect(&client, &server, "localhost"),
        HandshakeKind::Resumed
    );
}

#[test]
fn client_entries_expire_with_the_cache_timeout() {
    let pki = pki();
    let server = server_config(&pki, Arc::new(RustlsServerStore::new()));
    let clock = ManualClock::new();
    let cache = SessionCache::builder()
        .mode(CacheMode::CLIENT)
        .timeout(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let store = Arc::new(RustlsClientStore::with_cache(cache, 4));
    let client = client_config(&pki, &TLS13, store.clone());

    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        connect(&client, &server, "localhost"),
        HandshakeKind::Resumed
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert_eq!(store.stats().timeouts, 1, "{:?}", store.stats());
}

#[test]
fn server_store_modes_are_honoured() {
    let pki = pki();
    let server_store = Arc::new(RustlsServerStore::new());
    let server = server_config(&pki, server_store.clone());
    let store = Arc::new(RustlsClientStore::new(16));

    server_store
        .cache()
        .set_mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE);
    for version in [&TLS12, &TLS13] {
        let client = client_config(&pki, version, store.clone());
        assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
        assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    }
    assert!(server_store.cache().is_empty());

    server_store.cache().set_mode(CacheMode::SERVER);
    let client = client_config(&pki, &TLS13, store.clone());
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    server_store
        .cache()
        .set_mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP);
    // The ticket is offered but the server may not look it up: full handshake, ticket kept.
    assert_eq!(connect(&client, &server, "localhost"), HandshakeKind::Full);
    assert!(!server_store.cache().is_empty());
}

#[test]
fn racing_clients_never_offer_a_ticket_twice() {
    let pki = pki();
    let server_store = Arc::new(RustlsServerStore::new());
    let server = server_config(&pki, server_store.clone());
    let store = Arc::new(RustlsClientStore::new(16));
    let client = client_config(&pki, &TLS13, store.clone());

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (client, server) = (client.clone(), server.clone());
            std::thread::spawn(move || {
                (0..40)
                    .filter(|_| connect(&client, &server, "localhost") == HandshakeKind::Resumed)
                    .count() as u64
            })
        })
        .collect();
    let resumed: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let s = server_store.stats();
    let c = store.client_stats();
    // Every ticket the clients took was valid at the server: none was handed out twice.
    assert_eq!(s.misses, 0, "{s:?} {c:?}");
    assert_eq!(s.hits, c.tickets_taken, "{s:?} {c:?}");
    assert_eq!(resumed, c.tickets_taken, "{s:?} {c:?}");
    assert!(resumed > 0, "{s:?} {c:?}");
}

#[test]
fn racing_server_takes_hand_out_each_session_once() {
    const KEYS: u32 = 2000;
    let store = Arc::new(RustlsServerStore::new());
    for k in 0..KEYS {
        assert!(store.put(k.to_be_bytes().to_vec(), vec![1; 16]));
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..KEYS)
                    .filter(|k| store.take(&k.to_be_bytes()).is_some())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut won: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    won.sort_unstable();
    assert_eq!(
        won,
        (0..KEYS).collect::<Vec<_>>(),
        "each key must be taken exactly once"
    );
    assert!(store.cache().is_empty());
    let s = store.stats();
    assert_eq!(
        (s.hits, s.misses),
        (u64::from(KEYS), 3 * u64::from(KEYS)),
        "{s:?}"
    );
}
