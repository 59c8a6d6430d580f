//! Decoding stages used by extraction: each turns the bytes of a `.xbcrypt`,
//! `.zst` or `.lz4` file back into what was there before, streaming.

use crate::SinkError;
use crate::lz4frame::Lz4Decoder;
use crate::xbcrypt::{EncryptKey, XbcryptDecoder};

/// Where decoded bytes go.
pub(crate) type Out<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), SinkError>;

/// One decoding step.
pub(crate) trait Stage: Send {
    fn push(&mut self, data: &[u8], out: Out<'_>) -> Result<(), SinkError>;
    fn finish(&mut self, out: Out<'_>) -> Result<(), SinkError>;
}

/// Feeds `data` through `stages` in order, then into `sink`.
pub(crate) fn feed(
    stages: &mut [Box<dyn Stage>],
    data: &[u8],
    sink: Out<'_>,
) -> Result<(), SinkError> {
    match stages.split_first_mut() {
        None => sink(data),
        Some((first, rest)) => first.push(data, &mut |d| feed(rest, d, sink)),
    }
}

/// Ends every stage in order, flushing what each still holds downstream.
pub(crate) fn finish(stages: &mut [Box<dyn Stage>], sink: Out<'_>) -> Result<(), SinkError> {
    match stages.split_first_mut() {
        None => Ok(()),
        Some((first, rest)) => {
            first.finish(&mut |d| feed(rest, d, sink))?;
            finish(rest, sink)
        }
    }
}

pub(crate) struct Decrypt(pub(crate) XbcryptDecoder);

impl Decrypt {
    pub(crate) fn new(key: EncryptKey, path: &str) -> Self {
        Decrypt(XbcryptDecoder::new(key, path))
    }
}

impl Stage for Decrypt {
    fn push(&mut self, data: &[u8], out: Out<'_>) -> Result<(), SinkError> {
        self.0.push(data, out)
    }
    fn finish(&mut self, _out: Out<'_>) -> Result<(), SinkError> {
        self.0.finish()
    }
}

pub(crate) struct Lz4 {
    dec: Lz4Decoder,
    path: String,
}

impl Lz4 {
    pub(crate) fn new(path: &str) -> Self {
        Lz4 {
            dec: Lz4Decoder::default(),
            path: path.to_string(),
        }
    }
}

impl Stage for Lz4 {
    fn push(&mut self, data: &[u8], out: Out<'_>) -> Result<(), SinkError> {
        let mut downstream = None;
        let r = self.dec.push(data, &mut |d| {
            out(d).map_err(|e| {
                downstream = Some(e);
                String::new()
            })
        });
        match (r, downstream) {
            (_, Some(e)) => Err(e),
            (Err(what), None) => Err(SinkError::Decompress {
                path: self.path.clone(),
                what,
            }),
            (Ok(()), None) => Ok(()),
        }
    }
    fn finish(&mut self, _out: Out<'_>) -> Result<(), SinkError> {
        self.dec.finish().map_err(|what| SinkError::Decompress {
            path: self.path.clone(),
            what,
        })
    }
}

pub(crate) struct Zstd {
    dec: zstd::stream::raw::Decoder<'static>,
    path: String,
    scratch: Vec<u8>,
    mid_frame: bool,
}

impl Zstd {
    pub(crate) fn new(path: &str) -> Result<Self, SinkError> {
        let dec = zstd::stream::raw::Decoder::new().map_err(|e| SinkError::Decompress {
            path: path.to_string(),
            what: e.to_string(),
        })?;
        Ok(Zstd {
            dec,
            path: path.to_string(),
            scratch: vec![0; 1 << 17],
            mid_frame: false,
        })
    }
}

impl Stage for Zstd {
    fn push(&mut self, mut data: &[u8], out: Out<'_>) -> Result<(), SinkError> {
        use zstd::stream::raw::Operation;
        loop {
            let st = self
                .dec
                .run_on_buffers(data, &mut self.scratch)
                .map_err(|e| SinkError::Decompress {
                    path: self.path.clone(),
                    what: e.to_string(),
                })?;
            data = &data[st.bytes_read..];
            // a call that moved nothing says nothing about frame boundaries
            if st.bytes_read > 0 || st.bytes_written > 0 {
                self.mid_frame = st.remaining != 0;
            }
            if st.bytes_written > 0 {
                out(&self.scratch[..st.bytes_written])?;
            }
            // done when all input is taken and the output buffer was not filled
            if data.is_empty() && st.bytes_written < self.scratch.len() {
                return Ok(());
            }
        }
    }
    fn finish(&mut self, _out: Out<'_>) -> Result<(), SinkError> {
        if self.mid_frame {
            return Err(SinkError::Decompress {
                path: self.path.clone(),
                what: "zstd data ends inside a frame (truncated)".into(),
            });
        }
        Ok(())
    }
}
