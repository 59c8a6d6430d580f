//! A stream kept in memory: a cloneable `Write` whose clones share one
//! buffer, so one clone can be handed to a sink (which owns its writer)
//! while another reads what was written.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// In-memory `Write` target shared by its clones.
#[derive(Debug, Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// A copy of everything written so far.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything written so far, moved out (the buffer is left empty).
    #[must_use]
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_what_is_written() {
        let a = SharedBuf::default();
        let mut b = a.clone();
        b.write_all(b"xtra").unwrap();
        b.write_all(b"XTRA").unwrap();
        assert_eq!(a.bytes(), b"xtraXTRA");
        assert_eq!(a.take(), b"xtraXTRA");
        assert!(b.bytes().is_empty(), "taken from every clone");
    }
}
