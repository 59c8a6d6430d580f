//! `--throttle` on the reading side: the data files are read from the
//! server's disks at no more than the rate, whatever reaches the target.
//! The sink's own throttle limits what is written; an incremental reads
//! every page of a file to write a few of them, so without this its reads
//! would run at full speed against the server. Each side has its own
//! budget, so a full backup (read and written alike) still runs at the
//! rate, not at half of it.

use std::path::Path;

use xb_sink::Rate;

use super::seams::{ChunkReader, Reader, SeamError};

/// A [`Reader`] whose readers all draw on one [`Rate`].
pub struct Throttled<R> {
    inner: R,
    rate: Rate,
}

impl<R: Reader> Throttled<R> {
    /// `inner`'s reads, together at most `rate`.
    pub fn new(inner: R, rate: Rate) -> Self {
        Throttled { inner, rate }
    }
}

impl<R: Reader> Reader for Throttled<R> {
    fn tablespace(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        Ok(Box::new(Chunks {
            inner: self.inner.tablespace(path)?,
            rate: self.rate.clone(),
        }))
    }

    fn plain(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        Ok(Box::new(Chunks {
            inner: self.inner.plain(path)?,
            rate: self.rate.clone(),
        }))
    }
}

struct Chunks {
    inner: Box<dyn ChunkReader>,
    rate: Rate,
}

impl ChunkReader for Chunks {
    fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
        let chunk = self.inner.next_chunk()?;
        self.rate.take(chunk.len() as u64);
        Ok(chunk)
    }

    fn retries(&self) -> u64 {
        self.inner.retries()
    }

    fn pages_at(&mut self, first: u64, count: usize) -> Result<&[u8], SeamError> {
        let pages = self.inner.pages_at(first, count)?;
        self.rate.take(pages.len() as u64);
        Ok(pages)
    }

    fn space(&self) -> Option<xb_innodb::pagecheck::SpaceMeta> {
        self.inner.space()
    }

    fn identity(&self) -> Option<(u64, u64)> {
        self.inner.identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Hands out its number of chunks of 64 KiB.
    struct Fake(u32);

    impl ChunkReader for Fake {
        fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
            static CHUNK: [u8; 65536] = [0; 65536];
            if self.0 == 0 {
                return Ok(&[]);
            }
            self.0 -= 1;
            Ok(&CHUNK)
        }
    }

    struct FakeReader;

    impl Reader for FakeReader {
        fn tablespace(&self, _: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
            Ok(Box::new(Fake(16)))
        }
        fn plain(&self, _: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
            Ok(Box::new(Fake(16)))
        }
    }

    #[test]
    fn two_readers_together_keep_to_the_rate() {
        // 2 × 1 MiB at 4 MiB/s: about half a second, however it is split
        let r = Throttled::new(FakeReader, Rate::new(4 << 20));
        let t = Instant::now();
        for mut c in [
            r.tablespace(Path::new("a")).unwrap(),
            r.plain(Path::new("b")).unwrap(),
        ] {
            while !c.next_chunk().unwrap().is_empty() {}
        }
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}
