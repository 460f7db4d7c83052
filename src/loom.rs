//! Concurrency primitives: `std` normally, loom's models under `--cfg session_cache_loom`.
//!
//! Every atomic, `UnsafeCell` and `thread_local!` of this crate comes from here, so that a loom
//! build sees every shared access. Importing them from `std`/`core` directly would make the
//! access invisible to the model checker. (The table's bucket words are `crossbeam_epoch::Atomic`,
//! which crossbeam itself turns into loom atomics under `--cfg crossbeam_loom`; its 16-byte slots
//! are [`AtomicPair`]s, whose loom form is below.)
#![allow(unused_imports, dead_code)]

pub(crate) use self::pair::{AtomicPair, Pair};

#[cfg(not(session_cache_loom))]
mod imp {
    pub(crate) mod sync {
        pub(crate) mod atomic {
            pub(crate) use core::sync::atomic::{
                fence, AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicU8,
                AtomicUsize, Ordering,
            };
        }
        pub(crate) use std::sync::Mutex;
    }

    pub(crate) mod cell {
        /// `core::cell::UnsafeCell` with loom's closure-based API.
        #[derive(Debug)]
        #[repr(transparent)]
        pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

        impl<T> UnsafeCell<T> {
            #[inline(always)]
            pub(crate) const fn new(value: T) -> Self {
                Self(core::cell::UnsafeCell::new(value))
            }
            #[inline(always)]
            pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
                f(self.0.get())
            }
            #[inline(always)]
            pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
                f(self.0.get())
            }
        }
    }

    pub(crate) use std::thread_local;
}

#[cfg(session_cache_loom)]
mod imp {
    pub(crate) use loom::{cell, thread_local};
    pub(crate) mod sync {
        pub(crate) use loom::sync::atomic;
        pub(crate) use loom::sync::Mutex;
    }
}

pub(crate) use self::imp::*;

/// A 16-byte atomic: a word and a 64-bit rank, loaded, stored and compared-and-swapped as one
/// value.
mod pair {
    use core::sync::atomic::Ordering;

    /// The value of an [`AtomicPair`].
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub(crate) struct Pair {
        pub(crate) word: usize,
        pub(crate) rank: u64,
    }

    /// The std build: `portable-atomic`'s `AtomicU128`, lock-free on x86-64 (`cmpxchg16b`, and
    /// plain 16-byte loads where AVX makes them atomic: chosen at run time) and on aarch64
    /// (`casp` / `ldxp`+`stxp`); on a target without a 16-byte atomic it falls back to its own
    /// striped seqlock, still correct.
    #[cfg(not(session_cache_loom))]
    #[repr(transparent)]
    pub(crate) struct AtomicPair(portable_atomic::AtomicU128);

    #[cfg(not(session_cache_loom))]
    impl AtomicPair {
        #[inline(always)]
        fn pack(p: Pair) -> u128 {
            (u128::from(p.rank) << 64) | p.word as u128
        }

        #[inline(always)]
        fn unpack(v: u128) -> Pair {
            Pair {
                word: v as u64 as usize,
                rank: (v >> 64) as u64,
            }
        }

        #[inline(always)]
        pub(crate) const fn null() -> Self {
            Self(portable_atomic::AtomicU128::new(0))
        }

        /// A slot holding `value` from the start (not yet shared: no atomic store needed).
        #[inline(always)]
        pub(crate) fn new(value: Pair) -> Self {
            Self(portable_atomic::AtomicU128::new(Self::pack(value)))
        }

        #[inline(always)]
        pub(crate) fn load(&self, order: Ordering) -> Pair {
            Self::unpack(self.0.load(order))
        }

        #[inline(always)]
        pub(crate) fn store(&self, value: Pair, order: Ordering) {
            self.0.store(Self::pack(value), order)
        }

        #[inline(always)]
        pub(crate) fn compare_exchange(
            &self,
            current: Pair,
            new: Pair,
            success: Ordering,
            failure: Ordering,
        ) -> Result<Pair, Pair> {
            self.0
                .compare_exchange(Self::pack(current), Self::pack(new), success, failure)
                .map(Self::unpack)
                .map_err(Self::unpack)
        }

        /// Sets `bits` in the word; returns the previous value.
        #[inline(always)]
        pub(crate) fn fetch_or_word(&self, bits: usize, order: Ordering) -> Pair {
            Self::unpack(self.0.fetch_or(bits as u128, order))
        }
    }

    /// The loom build: loom has no 16-byte atomic, so the pair is one loom `AtomicUsize` holding
    /// the index of its value in a table of every value ever stored (interned: equal values get
    /// equal indexes), shifted left by one, with the low bit standing for the word's `FROZEN`
    /// bit ([`FROZEN_BIT`]). A compare-and-swap of indexes is then exactly a compare-and-swap of
    /// values, freezing is one `fetch_or` as in the real build's protocol, and loom sees the one
    /// location with its orderings, as it would the real one.
    #[cfg(session_cache_loom)]
    pub(crate) struct AtomicPair(loom::sync::atomic::AtomicUsize);

    /// The one word bit that [`AtomicPair::fetch_or_word`] sets (the table's `FROZEN`).
    #[cfg(session_cache_loom)]
    const FROZEN_BIT: usize = 0b10;

    #[cfg(session_cache_loom)]
    mod interned {
        use super::Pair;
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};

        #[derive(Default)]
        struct Values {
            index: HashMap<Pair, usize>,
            values: Vec<Pair>,
        }

        fn values() -> &'static Mutex<Values> {
            static VALUES: OnceLock<Mutex<Values>> = OnceLock::new();
            VALUES.get_or_init(|| {
                let mut v = Values::default();
                // Index 0 is the null pair, so that a fresh atomic holds it.
                v.index.insert(Pair::default(), 0);
                v.values.push(Pair::default());
                Mutex::new(v)
            })
        }

        pub(super) fn intern(p: Pair) -> usize {
            let mut v = values().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&i) = v.index.get(&p) {
                return i;
            }
            let i = v.values.len();
            v.values.push(p);
            v.index.insert(p, i);
            i
        }

        pub(super) fn value(i: usize) -> Pair {
            values().lock().unwrap_or_else(|e| e.into_inner()).values[i]
        }
    }

    #[cfg(session_cache_loom)]
    impl AtomicPair {
        fn encode(p: Pair) -> usize {
            let frozen = usize::from(p.word & FROZEN_BIT != 0);
            let plain = Pair {
                word: p.word & !FROZEN_BIT,
                ..p
            };
            interned::intern(plain) << 1 | frozen
        }

        fn decode(i: usize) -> Pair {
            let mut p = interned::value(i >> 1);
            if i & 1 != 0 {
                p.word |= FROZEN_BIT;
            }
            p
        }

        pub(crate) fn null() -> Self {
            Self(loom::sync::atomic::AtomicUsize::new(0))
        }

        pub(crate) fn new(value: Pair) -> Self {
            Self(loom::sync::atomic::AtomicUsize::new(Self::encode(value)))
        }

        pub(crate) fn load(&self, order: Ordering) -> Pair {
            Self::decode(self.0.load(order))
        }

        pub(crate) fn store(&self, value: Pair, order: Ordering) {
            self.0.store(Self::encode(value), order)
        }

        pub(crate) fn compare_exchange(
            &self,
            current: Pair,
            new: Pair,
            success: Ordering,
            failure: Ordering,
        ) -> Result<Pair, Pair> {
            self.0
                .compare_exchange(Self::encode(current), Self::encode(new), success, failure)
                .map(Self::decode)
                .map_err(Self::decode)
        }

        /// Sets `bits` (only ever `FROZEN`) in the word; returns the previous value.
        pub(crate) fn fetch_or_word(&self, bits: usize, order: Ordering) -> Pair {
            assert_eq!(bits, FROZEN_BIT, "the loom pair can only freeze");
            Self::decode(self.0.fetch_or(1, order))
        }
    }
}
