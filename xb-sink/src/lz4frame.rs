//! LZ4 frames as xtrabackup writes them for `--compress=lz4`, and a
//! streaming decoder for them. Each compressed write call is one complete
//! frame; a `.lz4` file is a concatenation of frames, which `lz4 -d` reads.
//!
//! Frame layout (little-endian):
//!
//! | size | field                                                         |
//! |------|---------------------------------------------------------------|
//! | 4    | magic `0x184D2204`                                            |
//! | 1    | FLG `0x6C`: version 01, independent blocks, content size, content checksum |
//! | 1    | BD: max block size code << 4 (4 = 64 KiB)                     |
//! | 8    | content size (uncompressed bytes of the frame)                |
//! | 1    | header checksum: `(xxh32(FLG..content size) >> 8) & 0xFF`     |
//! | 4+n  | per block: u32 size (bit 31 = stored raw) and the block       |
//! | 4    | end mark 0                                                    |
//! | 4    | xxh32 of the uncompressed content                             |

/// Frame magic number.
pub const MAGIC: u32 = 0x184D_2204;
/// Largest block we write: 64 KiB, xtrabackup's default chunk.
pub const BLOCK: usize = 64 << 10;

const P1: u32 = 2_654_435_761;
const P2: u32 = 2_246_822_519;
const P3: u32 = 3_266_489_917;
const P4: u32 = 668_265_263;
const P5: u32 = 374_761_393;

/// Streaming XXH32 (seed 0), the checksum LZ4 frames use.
#[derive(Debug, Clone)]
pub struct Xxh32 {
    v: [u32; 4],
    buf: [u8; 16],
    buffered: usize,
    total: u64,
}

impl Default for Xxh32 {
    fn default() -> Self {
        Xxh32 {
            v: [P1.wrapping_add(P2), P2, 0, 0u32.wrapping_sub(P1)],
            buf: [0; 16],
            buffered: 0,
            total: 0,
        }
    }
}

fn round(acc: u32, lane: u32) -> u32 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(13)
        .wrapping_mul(P1)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Xxh32 {
    fn stripe(&mut self, s: &[u8]) {
        for i in 0..4 {
            self.v[i] = round(self.v[i], le32(&s[i * 4..]));
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buffered > 0 {
            let take = (16 - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 16 {
                return;
            }
            let b = self.buf;
            self.stripe(&b);
            self.buffered = 0;
        }
        let mut chunks = data.chunks_exact(16);
        for s in &mut chunks {
            self.stripe(s);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The hash of everything fed so far.
    #[must_use]
    pub fn digest(&self) -> u32 {
        let mut h = if self.total >= 16 {
            self.v[0]
                .rotate_left(1)
                .wrapping_add(self.v[1].rotate_left(7))
                .wrapping_add(self.v[2].rotate_left(12))
                .wrapping_add(self.v[3].rotate_left(18))
        } else {
            P5
        };
        h = h.wrapping_add(self.total as u32);
        let tail = &self.buf[..self.buffered];
        let mut words = tail.chunks_exact(4);
        for w in &mut words {
            h = h
                .wrapping_add(le32(w).wrapping_mul(P3))
                .rotate_left(17)
                .wrapping_mul(P4);
        }
        for &b in words.remainder() {
            h = h
                .wrapping_add(u32::from(b).wrapping_mul(P5))
                .rotate_left(11)
                .wrapping_mul(P1);
        }
        h ^= h >> 15;
        h = h.wrapping_mul(P2);
        h ^= h >> 13;
        h = h.wrapping_mul(P3);
        h ^ (h >> 16)
    }
}

/// XXH32 (seed 0) of `data`.
#[must_use]
pub fn xxh32(data: &[u8]) -> u32 {
    let mut h = Xxh32::default();
    h.update(data);
    h.digest()
}

/// Appends one complete frame holding `data` to `out`.
pub fn encode_frame(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 255 + 32);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let desc_at = out.len();
    out.push(0x6C);
    out.push(4 << 4);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let hc = (xxh32(&out[desc_at..]) >> 8) as u8;
    out.push(hc);
    for block in data.chunks(BLOCK) {
        let c = lz4_flex::block::compress(block);
        if c.len() < block.len() {
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
        } else {
            out.extend_from_slice(&(block.len() as u32 | 0x8000_0000).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&xxh32(data).to_le_bytes());
}

#[derive(Debug)]
enum State {
    Magic,
    Skip(usize),
    Descriptor,
    Block,
    Checksum,
}

/// Decodes concatenated LZ4 frames fed in arbitrary pieces. Memory: one
/// block of input and one of output (4 MiB at most each).
#[derive(Debug)]
pub struct Lz4Decoder {
    buf: Vec<u8>,
    state: State,
    block_max: usize,
    block_checksum: bool,
    content_checksum: bool,
    hash: Xxh32,
    scratch: Vec<u8>,
}

impl Default for Lz4Decoder {
    fn default() -> Self {
        Lz4Decoder {
            buf: Vec::new(),
            state: State::Magic,
            block_max: BLOCK,
            block_checksum: false,
            content_checksum: false,
            hash: Xxh32::default(),
            scratch: Vec::new(),
        }
    }
}

impl Lz4Decoder {
    /// Feeds compressed bytes; decoded bytes go to `out`.
    ///
    /// # Errors
    /// A sentence saying what is wrong with the frame, or `out`'s error text.
    pub fn push(
        &mut self,
        data: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let r = self.run(&mut pos, out);
        self.buf.drain(..pos);
        r
    }

    fn run(
        &mut self,
        pos: &mut usize,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let avail = &self.buf[*pos..];
            match self.state {
                State::Magic => {
                    if avail.len() < 4 {
                        return Ok(());
                    }
                    let m = le32(avail);
                    if m == MAGIC {
                        self.state = State::Descriptor;
                        *pos += 4;
                    } else if m & 0xFFFF_FFF0 == 0x184D_2A50 {
                        if avail.len() < 8 {
                            return Ok(());
                        }
                        self.state = State::Skip(le32(&avail[4..]) as usize);
                        *pos += 8;
                    } else {
                        return Err(format!("bad lz4 frame magic {m:#010x}"));
                    }
                }
                State::Skip(n) => {
                    let take = n.min(avail.len());
                    *pos += take;
                    if take < n {
                        self.state = State::Skip(n - take);
                        return Ok(());
                    }
                    self.state = State::Magic;
                }
                State::Descriptor => {
                    if avail.len() < 2 {
                        return Ok(());
                    }
                    let (flg, bd) = (avail[0], avail[1]);
                    if flg >> 6 != 1 {
                        return Err(format!("unsupported lz4 frame version in FLG {flg:#04x}"));
                    }
                    if flg & 0x20 == 0 {
                        return Err(
                            "lz4 frame uses linked blocks, which xtrabackup never writes".into(),
                        );
                    }
                    let len = 3
                        + if flg & 0x08 != 0 { 8 } else { 0 }
                        + if flg & 0x01 != 0 { 4 } else { 0 };
                    if avail.len() < len {
                        return Ok(());
                    }
                    let hc = (xxh32(&avail[..len - 1]) >> 8) as u8;
                    if hc != avail[len - 1] {
                        return Err("lz4 frame header checksum mismatch".into());
                    }
                    self.block_max = match (bd >> 4) & 7 {
                        4 => 64 << 10,
                        5 => 256 << 10,
                        6 => 1 << 20,
                        7 => 4 << 20,
                        c => return Err(format!("bad lz4 block size code {c}")),
                    };
                    self.block_checksum = flg & 0x10 != 0;
                    self.content_checksum = flg & 0x04 != 0;
                    self.hash = Xxh32::default();
                    *pos += len;
                    self.state = State::Block;
                }
                State::Block => {
                    if avail.len() < 4 {
                        return Ok(());
                    }
                    let word = le32(avail);
                    if word == 0 {
                        *pos += 4;
                        self.state = if self.content_checksum {
                            State::Checksum
                        } else {
                            State::Magic
                        };
                        continue;
                    }
                    let size = (word & 0x7FFF_FFFF) as usize;
                    if size > self.block_max {
                        return Err(format!(
                            "lz4 block of {size} bytes exceeds the frame's maximum {}",
                            self.block_max
                        ));
                    }
                    let need = 4 + size + if self.block_checksum { 4 } else { 0 };
                    if avail.len() < need {
                        return Ok(());
                    }
                    let body = &avail[4..4 + size];
                    let plain: &[u8] = if word & 0x8000_0000 != 0 {
                        body
                    } else {
                        self.scratch.resize(self.block_max, 0);
                        let n = lz4_flex::block::decompress_into(body, &mut self.scratch)
                            .map_err(|e| format!("bad lz4 block: {e}"))?;
                        &self.scratch[..n]
                    };
                    self.hash.update(plain);
                    out(plain)?;
                    *pos += need;
                }
                State::Checksum => {
                    if avail.len() < 4 {
                        return Ok(());
                    }
                    if le32(avail) != self.hash.digest() {
                        return Err("lz4 content checksum mismatch".into());
                    }
                    *pos += 4;
                    self.state = State::Magic;
                }
            }
        }
    }

    /// Checks that the input ended on a frame boundary.
    ///
    /// # Errors
    /// When a frame is incomplete.
    pub fn finish(&self) -> Result<(), String> {
        if matches!(self.state, State::Magic) && self.buf.is_empty() {
            Ok(())
        } else {
            Err("lz4 data ends inside a frame (truncated)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh32_matches_published_vectors() {
        assert_eq!(xxh32(b""), 0x02CC_5D05);
        assert_eq!(xxh32(b"a"), 0x550D_7456);
        assert_eq!(xxh32(b"abc"), 0x32D1_53FF);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Xxh32::default();
        for piece in long.chunks(13) {
            h.update(piece);
        }
        assert_eq!(h.digest(), xxh32(&long));
    }

    #[test]
    fn frames_round_trip_when_fed_byte_by_byte() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        let mut enc = Vec::new();
        encode_frame(&data, &mut enc);
        encode_frame(b"", &mut enc);
        encode_frame(b"tail", &mut enc);
        let mut d = Lz4Decoder::default();
        let mut got = Vec::new();
        for b in enc.chunks(7) {
            d.push(b, &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        }
        d.finish().unwrap();
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(got, want);
        let mut d = Lz4Decoder::default();
        d.push(&enc[..enc.len() - 3], &mut |_| Ok(())).unwrap();
        assert!(d.finish().is_err());
    }
}
