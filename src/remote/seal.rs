//! Sealing: every value stored in Redis is encrypted and authenticated (XChaCha20-Poly1305).
//!
//! ```text
//! value = version (1 byte, 1) | key id (8) | nonce (24, random) | ciphertext | tag (16)
//! plaintext = expiry (8, big-endian milliseconds since the Unix epoch) | RemoteSession::encode()
//! associated data = version | key id | the Redis key (namespace ":" hex(id))
//! ```
//!
//! The Redis key is in the associated data, so a value copied to another key, another id or
//! another namespace does not open. The key id names which of the configured keys sealed it,
//! so keys can rotate: the newest seals, older ones still open what they sealed. Nonces are
//! random (24 bytes): nodes need no coordination. A value that is truncated, tampered with,
//! sealed with an unknown key or under another key does not open, and is a miss.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const TAG_LEN: usize = 16;
/// The smallest value that can open: header, nonce, expiry, tag.
const MIN_LEN: usize = HEADER_LEN + NONCE_LEN + 8 + TAG_LEN;

/// What derives a key's id: the tag of an empty message under a fixed nonce and this label.
/// It reveals nothing of the key and differs between keys.
const KEY_ID_LABEL: &[u8] = b"session-cache remote key id v1";

/// The keys of one tier: the first seals, all open.
pub(crate) struct Sealer {
    keys: Vec<([u8; KEY_ID_LEN], XChaCha20Poly1305)>,
}

/// Why a value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Shorter than any sealed value, or an unknown format version.
    Malformed,
    /// Sealed with a key this tier does not have.
    UnknownKey,
    /// The authentication failed: tampered with, truncated, or stored under another key.
    Forged,
}

impl Sealer {
    /// `current` seals; `previous` (newest first) still open.
    pub(crate) fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|k| {
                let cipher = XChaCha20Poly1305::new(k.into());
                (key_id(&cipher), cipher)
            })
            .collect();
        Self { keys }
    }

    /// Seals `plain` (the encoded session) with its expiry, for the Redis key `key`.
    pub(crate) fn seal(&self, key: &[u8], expires_unix_ms: u64, plain: &[u8]) -> Vec<u8> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut msg = Vec::with_capacity(8 + plain.len());
        msg.extend_from_slice(&expires_unix_ms.to_be_bytes());
        msg.extend_from_slice(plain);
        let mut header = [0u8; HEADER_LEN];
        header[0] = VERSION;
        header[1..].copy_from_slice(id);
        let aad = associated_data(&header, key);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &msg,
                    aad: &aad,
                },
            )
            // Encryption fails only for messages beyond 2^38 bytes.
            .unwrap_or_default();
        zero(&mut msg);
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value read from the Redis key `key`: its expiry and the encoded session.
    pub(crate) fn open(&self, key: &[u8], value: &[u8]) -> Result<(u64, Vec<u8>), OpenError> {
        if value.len() < MIN_LEN || value[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let header = &value[..HEADER_LEN];
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| id[..] == header[1..])
            .map(|(_, c)| c)
            .ok_or(OpenError::UnknownKey)?;
        let nonce = XNonce::from_slice(&value[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let aad = associated_data(header, key);
        let mut plain = cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &value[HEADER_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Forged)?;
        let expiry = u64::from_be_bytes(plain[..8].try_into().map_err(|_| OpenError::Forged)?);
        plain.drain(..8);
        Ok((expiry, plain))
    }
}

fn associated_data(header: &[u8], key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(key);
    aad
}

fn key_id(cipher: &XChaCha20Poly1305) -> [u8; KEY_ID_LEN] {
    let tag = cipher
        .encrypt(
            XNonce::from_slice(&[0u8; NONCE_LEN]),
            Payload {
                msg: &[],
                aad: KEY_ID_LABEL,
            },
        )
        .unwrap_or_default();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&tag[..KEY_ID_LEN]);
    id
}

/// Random bytes from the operating system. Without them no nonce can be trusted, so this
/// refuses to go on (it does not fail on any supported system).
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::getrandom(buf) {
        panic!("the operating system's random source failed: {e}");
    }
}

/// Overwrites a buffer that held secrets (best effort).
pub(crate) fn zero(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_kind_of_bad_value() {
        let s = Sealer::new(&[7; 32], &[]);
        let v = s.seal(b"edge:0102", 1234, b"secret session");
        assert_eq!(
            s.open(b"edge:0102", &v),
            Ok((1234, b"secret session".to_vec()))
        );
        assert!(!v.windows(6).any(|w| w == b"secret"));
        // another key (id or namespace): the associated data differs
        assert_eq!(s.open(b"edge:0103", &v), Err(OpenError::Forged));
        assert_eq!(s.open(b"other:0102", &v), Err(OpenError::Forged));
        // every single-bit flip and every truncation fails
        for i in 0..v.len() {
            let mut t = v.clone();
            t[i] ^= 1;
            assert!(s.open(b"edge:0102", &t).is_err(), "flip at {i}");
            assert!(s.open(b"edge:0102", &v[..i]).is_err(), "cut at {i}");
        }
        // an unknown key
        let other = Sealer::new(&[8; 32], &[]);
        assert_eq!(other.open(b"edge:0102", &v), Err(OpenError::UnknownKey));
        assert_eq!(s.open(b"edge:0102", &[]), Err(OpenError::Malformed));
    }

    #[test]
    fn rotation_opens_values_of_previous_keys() {
        let old = Sealer::new(&[1; 32], &[]);
        let v = old.seal(b"k", 9, b"x");
        let new = Sealer::new(&[2; 32], &[[1; 32]]);
        assert_eq!(new.open(b"k", &v), Ok((9, b"x".to_vec())));
        // the new key seals
        let w = new.seal(b"k", 9, b"x");
        assert_eq!(old.open(b"k", &w), Err(OpenError::UnknownKey));
        // nonces differ between values
        assert_ne!(new.seal(b"k", 9, b"x"), w);
    }
}
