//! What the real-client tests share: loopback TLS servers (rustls with `RustlsServerStore`,
//! OpenSSL with `OpensslExternalCache`) and runs of the system `openssl s_client` against them.
//!
//! Each test file uses part of it, so unused items are not warned about here.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the servers send after the handshake; s_client echoes it to stdout. In TLS 1.3 the
/// server's tickets precede it, so seeing it means s_client has processed them.
pub const GREETING: &str = "hello from the session-cache test server";

/// A self-signed certificate for `localhost`: (cert DER, PKCS#8 key DER, cert PEM, key PEM).
/// One per process, so that the servers of a fleet test present the same certificate, as a
/// fleet's nodes do.
pub fn certificate() -> (Vec<u8>, Vec<u8>, String, String) {
    static CERTIFICATE: OnceLock<(Vec<u8>, Vec<u8>, String, String)> = OnceLock::new();
    CERTIFICATE
        .get_or_init(|| {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            (
                ck.cert.der().to_vec(),
                ck.signing_key.serialize_der(),
                ck.cert.pem(),
                ck.signing_key.serialize_pem(),
            )
        })
        .clone()
}

/// A loopback server running `handle` for each connection, one at a time, until stopped
/// (by [`Server::stop`], or when dropped).
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handle: impl Fn(TcpStream) + Send + 'static) -> Self {
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

    /// Stops accepting and waits until the last connection has been fully handled; a panic of
    /// the server thread fails the test here.
    pub fn stop(mut self) {
        self.wake();
        self.thread.take().unwrap().join().unwrap();
    }

    fn wake(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        drop(TcpStream::connect(("127.0.0.1", self.port)));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.wake();
            // Not `unwrap`: a panic while the test is already failing would abort it.
            let _ = thread.join();
        }
    }
}

/// A rustls server (TLS 1.2 and 1.3) whose session storage is `store`.
#[cfg(feature = "rustls")]
pub fn rustls_server(store: Arc<session_cache::integrations::rustls::RustlsServerStore>) -> Server {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::version::{TLS12, TLS13};

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

/// An OpenSSL server (Mozilla's intermediate settings) whose session cache is `cache`.
#[cfg(feature = "openssl")]
pub fn openssl_server(
    cache: &session_cache::integrations::openssl::OpensslExternalCache,
) -> Server {
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslMethod, SslOptions};
    use openssl::x509::X509;

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

/// The output of one s_client run.
pub struct Client {
    pub stdout: String,
}

impl Client {
    fn count(&self, prefix: &str) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    pub fn new_handshakes(&self) -> usize {
        self.count("New, ")
    }

    pub fn reused(&self) -> usize {
        self.count("Reused, ")
    }

    pub fn tickets(&self) -> usize {
        self.count("Post-Handshake New Session Ticket arrived")
    }

    /// Whether the one handshake of a single-connection run resumed.
    pub fn resumed(&self) -> bool {
        assert_eq!(
            self.new_handshakes() + self.reused(),
            1,
            "one handshake expected:\n{}",
            self.stdout
        );
        self.reused() == 1
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
pub fn run_reconnect(port: u16, args: &[&str]) -> Client {
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
pub fn run_once(port: u16, args: &[&str]) -> Client {
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

/// A file in the temporary directory, named for this process so parallel runs do not meet.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("session-cache-{}-{name}", std::process::id()))
}
