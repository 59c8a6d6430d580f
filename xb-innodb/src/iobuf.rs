//! Read buffers for copying tablespaces: 4 KiB aligned (what `O_DIRECT`
//! needs) and, where the kernel allows, backed by 2 MiB transparent huge
//! pages.
//!
//! Why huge pages: the kernel builds a direct read or write from the
//! buffer's physical pages, and a device takes only so many discontiguous
//! pieces per request (254 on virtio-blk), so a buffer of scattered 4 KiB
//! pages turns one 2 MiB read into four or more requests. A huge page is
//! one piece: the same read is one request. On the VM the benchmarks run on
//! the device's cost is per request: copying 2.3 GB with 4 MiB direct I/O
//! took 3.2–4.0 s from an ordinary buffer and 1.5–2.1 s from a huge-page
//! one. Where huge pages are off or none is free the buffer is ordinary
//! memory, and only slower.
//!
//! The module holds the crate's only `unsafe` code: `mmap`, `madvise` and
//! `munmap` have no safe wrapper, and a mapping is seen as bytes through a
//! raw pointer. The mapping is owned by one [`IoBuf`], never shared, and
//! unmapped once, when it is dropped.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};

/// Alignment every direct I/O accepts.
const ALIGN: usize = 4096;

/// Size (and alignment) of a transparent huge page on x86-64 and arm64.
const HUGE: usize = 2 << 20;

/// One aligned block of the fallback buffer.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
struct Block([u8; ALIGN]);

enum Inner {
    /// An anonymous mapping (`map`, `map_len`); the buffer starts at `data`,
    /// the first huge-page boundary inside it.
    Mapped {
        map: NonNull<c_void>,
        map_len: usize,
        data: NonNull<u8>,
    },
    /// Ordinary aligned heap memory, when the mapping failed.
    Heap(Vec<Block>),
}

/// A zero-filled, 4 KiB-aligned buffer of a fixed length.
pub struct IoBuf {
    inner: Inner,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone (no other pointer to it
// exists outside `Inner`), so moving it to another thread moves the only
// access with it.
unsafe impl Send for IoBuf {}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoBuf")
            .field("len", &self.len)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl IoBuf {
    /// A buffer of `len` bytes (rounded up to 4 KiB), asking for huge pages.
    #[must_use]
    pub fn new(len: usize) -> IoBuf {
        let len = len.div_ceil(ALIGN) * ALIGN;
        match map_huge(len) {
            Some(inner) => IoBuf { inner, len },
            None => IoBuf::heap(len),
        }
    }

    /// A buffer in ordinary heap memory (no mapping is tried).
    #[must_use]
    pub fn heap(len: usize) -> IoBuf {
        let len = len.div_ceil(ALIGN) * ALIGN;
        IoBuf {
            inner: Inner::Heap(vec![Block([0; ALIGN]); len / ALIGN]),
            len,
        }
    }

    /// Its length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it lives in its own mapping (which asked for huge pages).
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped { .. })
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: `data..data + len` lies inside the live, readable and
            // writable mapping (map_huge reserved `len + HUGE` bytes and
            // `data` is at most `HUGE - 1` past `map`); anonymous memory is
            // zero-filled, so every byte is initialised; `&self` keeps it
            // alive and excludes `&mut` access for the slice's lifetime.
            Inner::Mapped { data, .. } => unsafe {
                std::slice::from_raw_parts(data.as_ptr(), self.len)
            },
            Inner::Heap(v) => bytemuck::cast_slice(v),
        }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.inner {
            // SAFETY: as in `as_slice`; `&mut self` makes the access unique.
            Inner::Mapped { data, .. } => unsafe {
                std::slice::from_raw_parts_mut(data.as_ptr(), self.len)
            },
            Inner::Heap(v) => bytemuck::cast_slice_mut(v),
        }
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        if let Inner::Mapped { map, map_len, .. } = self.inner {
            // SAFETY: `map`/`map_len` are exactly what mmap returned, and
            // no slice of it can outlive `self`. A failure leaks address
            // space only.
            let _ = unsafe { munmap(map, map_len) };
        }
    }
}

/// Maps `len` bytes starting on a huge-page boundary and asks for huge
/// pages there; `None` if the mapping fails (the advice failing is fine:
/// the memory is still good).
fn map_huge(len: usize) -> Option<Inner> {
    let map_len = len.checked_add(HUGE)?;
    let size = NonZeroUsize::new(map_len)?;
    // SAFETY: a fresh private anonymous mapping aliases nothing.
    let map = unsafe {
        mmap_anonymous(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
    }
    .ok()?;
    let start = map.as_ptr() as usize;
    let skip = start.next_multiple_of(HUGE) - start;
    // SAFETY: `skip < HUGE`, so `start + skip` is inside the mapping.
    let data = unsafe { map.cast::<u8>().add(skip) };
    // SAFETY: `data..data + len` is inside the mapping we own; the advice
    // changes how it is backed, never its contents.
    let _ = unsafe { madvise(data.cast(), len, MmapAdvise::MADV_HUGEPAGE) };
    Some(Inner::Mapped { map, map_len, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_writable_and_of_the_asked_length() {
        for len in [1, 4096, 65536, HUGE, HUGE + 1] {
            for mut b in [IoBuf::new(len), IoBuf::heap(len)] {
                let want = len.div_ceil(ALIGN) * ALIGN;
                assert_eq!(b.len(), want);
                assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0, "{b:?}");
                assert!(b.as_slice().iter().all(|&x| x == 0));
                let s = b.as_mut_slice();
                s[0] = 1;
                s[want - 1] = 2;
                assert_eq!((b.as_slice()[0], b.as_slice()[want - 1]), (1, 2));
            }
        }
        let b = IoBuf::new(HUGE);
        if b.is_mapped() {
            assert_eq!(b.as_slice().as_ptr() as usize % HUGE, 0);
        }
    }

    #[test]
    fn a_buffer_moves_to_another_thread() {
        let mut b = IoBuf::new(8192);
        b.as_mut_slice()[100] = 7;
        let got = std::thread::spawn(move || b.as_slice()[100])
            .join()
            .unwrap();
        assert_eq!(got, 7);
    }
}
