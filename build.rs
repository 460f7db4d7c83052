//! Loom builds only: lets `.ci/gates/loom.sh` pick the collector and inject a fault through the
//! environment instead of `RUSTFLAGS`, so that every loom build shares its compiled
//! dependencies (a change of `RUSTFLAGS` rebuilds them all; a change of these variables
//! rebuilds only this crate).
//!
//! - `SESSION_CACHE_GRAVEYARD=1`: as `--cfg session_cache_graveyard`;
//! - `SESSION_CACHE_MUTANT=NAME`: as `--cfg session_cache_mutant="NAME"`.
//!
//! Both are ignored unless the build has `--cfg session_cache_loom`: an ordinary build never
//! reads them, so nothing in a user's environment can change the library.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SESSION_CACHE_GRAVEYARD");
    println!("cargo:rerun-if-env-changed=SESSION_CACHE_MUTANT");
    // Set by cargo for every `--cfg` in RUSTFLAGS.
    if std::env::var_os("CARGO_CFG_SESSION_CACHE_LOOM").is_none() {
        return;
    }
    if std::env::var("SESSION_CACHE_GRAVEYARD").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=session_cache_graveyard");
    }
    if let Ok(m) = std::env::var("SESSION_CACHE_MUTANT") {
        if !m.is_empty() {
            assert!(
                m.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "SESSION_CACHE_MUTANT: a mutant name, [a-z_]+"
            );
            println!("cargo:rustc-cfg=session_cache_mutant=\"{m}\"");
        }
    }
}
