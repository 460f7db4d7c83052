//! Concurrency primitives: `std` normally, loom's models under `--cfg session_cache_loom`.
//!
//! Every atomic, `UnsafeCell` and `thread_local!` of this crate comes from here, so that a loom
//! build sees every shared access. Importing them from `std`/`core` directly would make the
//! access invisible to the model checker. (The table's slot words are `crossbeam_epoch::Atomic`,
//! which crossbeam itself turns into loom atomics under `--cfg crossbeam_loom`.)
#![allow(unused_imports, dead_code)]

#[cfg(not(session_cache_loom))]
mod imp {
    pub(crate) mod sync {
        pub(crate) mod atomic {
            pub(crate) use core::sync::atomic::{
                fence, AtomicBool, AtomicIsize, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
                Ordering,
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
