//! Scrubbing secrets from the process's argument list, as the MySQL and
//! MariaDB clients and mariadb-backup do: a `--password=…` or
//! `--encrypt-key …` typed on the command line is otherwise readable by any
//! local user in `ps` and `/proc/PID/cmdline` for the whole backup.
//!
//! Why `unsafe`: the strings `ps` shows are the ones the kernel put on the
//! process's initial stack; the only way to change what `ps` shows is to
//! write into that memory. Rust's standard library keeps no pointer to it
//! that we may use, so we capture `argc`/`argv` the way it does itself: a
//! function in `.init_array`, which glibc calls with `(argc, argv, envp)`
//! before `main`. The writes stay inside each argument's own bytes (its
//! length is read first, the NUL is never touched), and happen once, after
//! clap has parsed the arguments into owned strings.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

static ARGC: AtomicIsize = AtomicIsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Called by glibc before `main` with the process's arguments.
extern "C" fn capture(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(argc as isize, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

// SAFETY: `.init_array` entries are plain function pointers that the
// dynamic loader calls once at start-up with (argc, argv, envp), the
// signature `capture` has; the standard library registers its own the same way.
#[used]
#[unsafe(link_section = ".init_array")]
static CAPTURE: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture;

/// Where the secret in one argument starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    /// Nothing secret here.
    None,
    /// From this byte to the end (`--password=VALUE`).
    From(usize),
    /// The next argument is the secret (`--encrypt-key VALUE`).
    Next,
}

/// Options whose values are secrets.
const SECRET_OPTIONS: &[&str] = &["--password", "--encrypt-key"];

fn secret_in(arg: &[u8]) -> Secret {
    for opt in SECRET_OPTIONS {
        let opt = opt.as_bytes();
        if arg == opt {
            // `--password` alone prompts; `--encrypt-key` takes the next word
            return if opt == b"--encrypt-key" {
                Secret::Next
            } else {
                Secret::None
            };
        }
        if arg.len() > opt.len() && arg.starts_with(opt) && arg[opt.len()] == b'=' {
            return Secret::From(opt.len() + 1);
        }
    }
    Secret::None
}

/// Overwrites the values of secret options in the process's argument list
/// with `x`; returns how many were scrubbed. Call it once, after parsing.
pub fn scrub_secrets() -> usize {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() {
        return 0;
    }
    let mut next_is_secret = false;
    let mut scrubbed = 0;
    for i in 1..argc {
        // SAFETY: argv holds argc pointers to NUL-terminated strings that
        // live for the whole process (the kernel's initial stack).
        let p = unsafe { *argv.offset(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: as above; the length is taken before anything is written.
        let len = unsafe { CStr::from_ptr(p) }.to_bytes().len();
        // SAFETY: `p..p+len` is this argument's bytes, without its NUL.
        let arg = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
        let from = if next_is_secret {
            next_is_secret = false;
            Some(0)
        } else {
            match secret_in(arg) {
                Secret::From(at) => Some(at),
                Secret::Next => {
                    next_is_secret = true;
                    None
                }
                Secret::None => None,
            }
        };
        if let Some(at) = from {
            arg[at..].fill(b'x');
            scrubbed += 1;
        }
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_found_in_every_spelling() {
        assert_eq!(secret_in(b"--password=s3cret"), Secret::From(11));
        assert_eq!(secret_in(b"--password"), Secret::None);
        assert_eq!(secret_in(b"--encrypt-key=k"), Secret::From(14));
        assert_eq!(secret_in(b"--encrypt-key"), Secret::Next);
        assert_eq!(secret_in(b"--encrypt-key-file=/k"), Secret::None);
        assert_eq!(secret_in(b"--passwordless"), Secret::None);
        assert_eq!(secret_in(b"--user=password"), Secret::None);
    }
}
