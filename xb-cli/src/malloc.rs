//! How the C allocator is set up for a backup process.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core), and a block freed in one stays in that arena. A backup of many
//! tables allocates a little per file on every copy worker and tokio
//! thread, so the freed space is spread over a dozen arenas and none of it
//! goes back: measured at 100,000 tables, peak RSS 99 MiB with the default
//! and 83 MiB with two arenas, at the same wall time (`benches/e2e/many_tables.sh`);
//! the 2.5 GB sysbench backup ran equally fast either way. The workers
//! reuse their copy buffers, so they seldom meet on an arena's lock.
//!
//! Why `unsafe`: `mallopt` is a C function; Rust's standard library has no
//! binding for it. It is called once, first thing in `main`, before any
//! thread exists, with a parameter glibc documents.
//! Only the CLI does this: a program that embeds the library chooses its
//! own allocator.
#![allow(unsafe_code)]

/// Arenas the process may have.
const ARENAS: std::ffi::c_int = 2;

/// Caps glibc's arenas at [`ARENAS`]. Elsewhere (musl) a no-op.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    // glibc's malloc.h: #define M_ARENA_MAX -8
    const M_ARENA_MAX: std::ffi::c_int = -8;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt takes two ints and touches only the allocator's own
    // settings; M_ARENA_MAX with a positive value is valid at any time. Its
    // result (1 done, 0 refused) changes nothing for us either way.
    unsafe {
        mallopt(M_ARENA_MAX, ARENAS);
    }
}

/// Caps glibc's arenas at [`ARENAS`]. Elsewhere (musl) a no-op.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
