//! Where things live in Redis. The one place that knows the layout.
//!
//! * a session: the key `<namespace>:<hex(id)>` (lowercase hex of the id bytes the cache keys
//!   by, whatever they contain: a session id, a ticket, or a protocol-version prefix followed by
//!   an id), holding the sealed value ([`seal`](super::seal)) with a TTL equal to the session's
//!   remaining lifetime;
//! * invalidations: the pub/sub channel `<namespace>:invalidate`; a message is the sending
//!   node's 8-byte token followed by the raw id.
//!
//! With an ACL user limited to the namespace (`~<namespace>:*` and `&<namespace>:*`), a node
//! reaches nothing else.

/// The Redis key of the session with this id.
pub(crate) fn session_key(namespace: &str, id: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = Vec::with_capacity(namespace.len() + 1 + 2 * id.len());
    key.extend_from_slice(namespace.as_bytes());
    key.push(b':');
    for b in id {
        key.push(HEX[usize::from(b >> 4)]);
        key.push(HEX[usize::from(b & 15)]);
    }
    key
}

/// The channel on which removals are announced to the other nodes.
pub(crate) fn invalidation_channel(namespace: &str) -> String {
    format!("{namespace}:invalidate")
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        assert_eq!(super::session_key("edge", &[0x01, 0xab]), b"edge:01ab");
        assert_eq!(super::invalidation_channel("edge"), "edge:invalidate");
    }
}
