//! A thread's inbox: a lock-free stack of batches that any thread pushes and one owner takes,
//! all at once, until the owner closes it.
//!
//! One word holds both the list and the closed mark (the low bit of the head pointer), so that
//! closing the inbox and taking what it holds is one atomic step: a push either lands before
//! it, and is taken, or sees the mark and gets its batch back. Nothing is ever popped one node
//! at a time, so a node is never read after another thread took it (no ABA, no hazard).
//!
//! Built in every configuration, so that loom-tests/inbox.rs models it.

use core::marker::PhantomData;

use crate::loom::sync::atomic::{
    AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The closed mark in the head word (nodes are boxes, aligned to more than 1).
const CLOSED: usize = 1;

/// Batches queued for one owner by any thread (module docs).
pub struct Inbox<B> {
    /// The newest node's address, or 0, with [`CLOSED`] set once the owner closed the inbox.
    head: AtomicUsize,
    _owns: PhantomData<Box<Node<B>>>,
}

struct Node<B> {
    batch: B,
    /// The next older node's address, or 0.
    next: usize,
}

// SAFETY: an inbox hands batches from the thread that pushes them to the one that takes them.
unsafe impl<B: Send> Send for Inbox<B> {}
// SAFETY: as `Send`: every access to a node goes through the head word's atomics.
unsafe impl<B: Send> Sync for Inbox<B> {}

impl<B> core::fmt::Debug for Inbox<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Relaxed: a snapshot for display; it synchronises with nothing.
        let head = self.head.load(Relaxed);
        f.debug_struct("Inbox")
            .field("closed", &(head & CLOSED != 0))
            .field("empty", &(head & !CLOSED == 0))
            .finish()
    }
}

impl<B> Default for Inbox<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Inbox<B> {
    /// An open, empty inbox.
    pub fn new() -> Self {
        Inbox {
            head: AtomicUsize::new(0),
            _owns: PhantomData,
        }
    }

    /// Queues `batch` for the owner, or gives it back if the inbox is closed.
    pub fn push(&self, batch: B) -> Result<(), B> {
        let node = Box::into_raw(Box::new(Node { batch, next: 0 }));
        debug_assert_eq!(
            node as usize & CLOSED,
            0,
            "a node address with its low bit set"
        );
        // Relaxed: only a guess at the head; the CAS below checks it.
        let mut head = self.head.load(Relaxed);
        loop {
            if head & CLOSED != 0 {
                // SAFETY: never published; ours since `Box::into_raw` above.
                return Err(unsafe { Box::from_raw(node) }.batch);
            }
            // SAFETY: ours until the CAS below publishes it.
            unsafe { (*node).next = head };
            // Release: publishes the node (its batch and `next`) to the owner's `take`, whose
            // Acquire swap pairs with it. Relaxed on failure: the head is only reread.
            #[cfg(not(session_cache_mutant = "inbox_blind_push"))]
            let cas = self
                .head
                .compare_exchange(head, node as usize, Release, Relaxed);
            // Mutant (loom-tests/README.md): store the new head without checking it, so a push
            // racing a take or a close overwrites what that took or the closed mark.
            #[cfg(session_cache_mutant = "inbox_blind_push")]
            let cas = {
                self.head.store(node as usize, Release);
                Ok::<usize, usize>(head)
            };
            match cas {
                Ok(_) => return Ok(()),
                Err(current) => head = current,
            }
        }
    }

    /// Whether nothing is queued (the owner's check before it takes).
    pub fn is_empty(&self) -> bool {
        // Relaxed: a hint; `take_all` reads the list with Acquire.
        self.head.load(Relaxed) & !CLOSED == 0
    }

    /// Takes every queued batch, oldest first.
    pub fn take_all(&self) -> Vec<B> {
        // Acquire: pairs with `push`'s Release CAS of each node. The mark stays as it is.
        #[cfg(not(session_cache_mutant = "inbox_load_then_clear"))]
        let word = self.head.fetch_and(CLOSED, Acquire);
        // Mutant (loom-tests/README.md): read the list, then clear it in a second step, so a
        // push between the two is lost.
        #[cfg(session_cache_mutant = "inbox_load_then_clear")]
        let word = {
            let word = self.head.load(Acquire);
            self.head.store(word & CLOSED, Relaxed);
            word
        };
        // SAFETY: the list in `word` is now ours alone (see `collect`).
        unsafe { Self::collect(word) }
    }

    /// Closes the inbox and takes what it held: every later push gets its batch back.
    pub fn close(&self) -> Vec<B> {
        // Acquire: as in `take_all`; taking and closing are one step (module docs).
        let word = self.head.swap(CLOSED, Acquire);
        // SAFETY: as in `take_all`.
        unsafe { Self::collect(word) }
    }

    /// The batches of the list at `word`, oldest first, its nodes freed.
    ///
    /// # Safety
    /// The list must have been unlinked from the head by the caller's own atomic step, so that
    /// no other thread can reach it.
    unsafe fn collect(word: usize) -> Vec<B> {
        let mut node = word & !CLOSED;
        let mut batches = Vec::new();
        while node != 0 {
            // SAFETY: every node in the list was made by `push` from a `Box`, published once,
            // and is reachable only from the list the caller unlinked.
            let boxed = unsafe { Box::from_raw(node as *mut Node<B>) };
            node = boxed.next;
            batches.push(boxed.batch);
        }
        batches.reverse();
        batches
    }
}

impl<B> Drop for Inbox<B> {
    fn drop(&mut self) {
        // No other reference exists: what is still queued is dropped with the inbox.
        // SAFETY: `&mut self`: no thread can reach the list any more.
        drop(unsafe { Self::collect(self.head.load(Relaxed)) });
    }
}
