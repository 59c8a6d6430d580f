//! xbcrypt, the encrypted-file format of `xtrabackup --encrypt` (`.xbcrypt`):
//! AES in CTR mode with a fresh random IV per chunk, and the SHA-256 of the
//! plaintext encrypted along with it so a wrong key is detected.
//!
//! Chunk layout (little-endian), repeated until the end of the file:
//!
//! | offset | size | field                                            |
//! |--------|------|--------------------------------------------------|
//! | 0      | 8    | magic `XBCRYP03` (`XBCRYP02`: no hash appended)  |
//! | 8      | 8    | reserved, 0                                      |
//! | 16     | 8    | original size = plaintext + 32                   |
//! | 24     | 8    | encrypted size (the same)                        |
//! | 32     | 4    | zlib CRC-32 of the encrypted bytes               |
//! | 36     | 8    | IV length, 16                                    |
//! | 44     | 16   | IV (initial big-endian CTR counter block)        |
//! | 60     | n    | encrypted `plaintext ‖ SHA-256(plaintext)`       |

use aes::cipher::{KeyIvInit, StreamCipher};
use sha2::{Digest, Sha256};

use crate::SinkError;

const MAGIC3: &[u8; 8] = b"XBCRYP03";
const MAGIC2: &[u8; 8] = b"XBCRYP02";
const HEAD: usize = 60;
/// Default plaintext bytes per chunk (`--encrypt-chunk-size`).
pub const DEFAULT_CHUNK: usize = 64 << 10;
/// Largest chunk the decoder accepts, so a corrupt size cannot exhaust memory.
const MAX_CHUNK: u64 = 64 << 20;

/// An AES key of 16, 24 or 32 bytes. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct EncryptKey(Vec<u8>);

impl std::fmt::Debug for EncryptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptKey(AES{}, redacted)", self.0.len() * 8)
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl EncryptKey {
    /// The key as given to `--encrypt-key`: taken as raw bytes when it is
    /// 16, 24 or 32 bytes long (as xtrabackup does), otherwise as hex digits.
    ///
    /// # Errors
    /// [`SinkError::Key`] for any other length or bad hex.
    pub fn from_arg(s: &str) -> Result<Self, SinkError> {
        if matches!(s.len(), 16 | 24 | 32) {
            return Ok(EncryptKey(s.as_bytes().to_vec()));
        }
        match unhex(s) {
            Some(k) if matches!(k.len(), 16 | 24 | 32) => Ok(EncryptKey(k)),
            _ => Err(SinkError::Key {
                what: format!("the key is {} characters long", s.len()),
            }),
        }
    }

    /// The key from a key file: the whole file, raw bytes, as xtrabackup
    /// reads it (a trailing newline is part of the key).
    ///
    /// # Errors
    /// [`SinkError::Key`] when the file size is not 16, 24 or 32 bytes;
    /// I/O errors when it cannot be read.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SinkError> {
        let k = std::fs::read(path).map_err(|e| SinkError::io(path.display(), e))?;
        Self::from_bytes(k).map_err(|_| SinkError::Key {
            what: format!(
                "key file {} does not hold 16, 24 or 32 bytes",
                path.display()
            ),
        })
    }

    /// A key from raw bytes.
    ///
    /// # Errors
    /// [`SinkError::Key`] when the length is not 16, 24 or 32.
    pub fn from_bytes(k: Vec<u8>) -> Result<Self, SinkError> {
        if matches!(k.len(), 16 | 24 | 32) {
            Ok(EncryptKey(k))
        } else {
            Err(SinkError::Key {
                what: format!("{} bytes", k.len()),
            })
        }
    }

    /// Key length in bytes (16, 24 or 32), for checking it against an
    /// algorithm name such as `AES256`.
    #[must_use]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Applies the AES-CTR keystream starting at counter block `iv`.
    fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        // lengths are checked by every constructor
        match self.0.len() {
            16 => ctr::Ctr128BE::<aes::Aes128>::new(self.0[..].into(), iv.into())
                .apply_keystream(data),
            24 => ctr::Ctr128BE::<aes::Aes192>::new(self.0[..].into(), iv.into())
                .apply_keystream(data),
            _ => ctr::Ctr128BE::<aes::Aes256>::new(self.0[..].into(), iv.into())
                .apply_keystream(data),
        }
    }
}

/// Appends one `XBCRYP03` chunk holding `plain` to `out`.
pub fn encrypt_chunk(key: &EncryptKey, plain: &[u8], out: &mut Vec<u8>) {
    let iv: [u8; 16] = rand::random();
    let start = out.len();
    let n = plain.len() as u64 + 32;
    out.extend_from_slice(MAGIC3);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&16u64.to_le_bytes());
    out.extend_from_slice(&iv);
    let body = out.len();
    out.extend_from_slice(plain);
    out.extend_from_slice(&Sha256::digest(plain));
    key.apply(&iv, &mut out[body..]);
    let crc = crc32fast::hash(&out[body..]);
    out[start + 32..start + 36].copy_from_slice(&crc.to_le_bytes());
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes concatenated xbcrypt chunks fed in arbitrary pieces.
#[derive(Debug)]
pub struct XbcryptDecoder {
    key: EncryptKey,
    buf: Vec<u8>,
    path: String,
}

impl XbcryptDecoder {
    /// A decoder for the file `path` (named in errors).
    #[must_use]
    pub fn new(key: EncryptKey, path: &str) -> Self {
        XbcryptDecoder {
            key,
            buf: Vec::new(),
            path: path.to_string(),
        }
    }

    fn err(&self, what: impl Into<String>) -> SinkError {
        SinkError::Decrypt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// Feeds encrypted bytes; plaintext goes to `out`.
    ///
    /// # Errors
    /// [`SinkError::Decrypt`] for a bad chunk, CRC or SHA-256 (wrong key), or
    /// `out`'s error.
    pub fn push(
        &mut self,
        data: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let r = loop {
            let avail = &self.buf[pos..];
            if avail.len() < HEAD {
                break Ok(());
            }
            let hashed = match &avail[..8] {
                m if m == MAGIC3 => true,
                m if m == MAGIC2 => false,
                _ => break Err(self.err("bad xbcrypt chunk magic (XBCRYP01 is not supported)")),
            };
            let orig = le64(&avail[16..]);
            let enc = le64(&avail[24..]);
            if orig != enc || enc > MAX_CHUNK || (hashed && enc < 32) || le64(&avail[36..]) != 16 {
                break Err(self.err("bad xbcrypt chunk header"));
            }
            let enc = enc as usize;
            if avail.len() < HEAD + enc {
                break Ok(());
            }
            let stored = u32::from_le_bytes([avail[32], avail[33], avail[34], avail[35]]);
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&avail[44..60]);
            let mut body = avail[HEAD..HEAD + enc].to_vec();
            if crc32fast::hash(&body) != stored {
                break Err(self.err("checksum mismatch in an encrypted chunk"));
            }
            self.key.apply(&iv, &mut body);
            let plain_len = if hashed { enc - 32 } else { enc };
            if hashed && Sha256::digest(&body[..plain_len])[..] != body[plain_len..] {
                break Err(self.err("sha-256 of the decrypted chunk does not match (wrong key?)"));
            }
            if let Err(e) = out(&body[..plain_len]) {
                break Err(e);
            }
            pos += HEAD + enc;
        };
        self.buf.drain(..pos);
        r
    }

    /// Checks that the input ended on a chunk boundary.
    ///
    /// # Errors
    /// [`SinkError::Decrypt`] when a chunk is incomplete.
    pub fn finish(&self) -> Result<(), SinkError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("file ends inside an encrypted chunk (truncated)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_a_wrong_key_is_caught() {
        let key = EncryptKey::from_arg(&"ab".repeat(32)).unwrap();
        let mut enc = Vec::new();
        encrypt_chunk(&key, b"hello world", &mut enc);
        encrypt_chunk(&key, b"", &mut enc);
        assert_eq!(&enc[..8], b"XBCRYP03");
        assert_eq!(le64(&enc[16..]), 11 + 32);
        assert!(!enc.windows(5).any(|w| w == b"hello"));
        let mut got = Vec::new();
        let mut d = XbcryptDecoder::new(key, "f.xbcrypt");
        for b in enc.chunks(5) {
            d.push(b, &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        }
        d.finish().unwrap();
        assert_eq!(got, b"hello world");
        let other = EncryptKey::from_arg("0123456789abcdef0123456789abcdef").unwrap();
        let e = XbcryptDecoder::new(other, "f.xbcrypt")
            .push(&enc, &mut |_| Ok(()))
            .unwrap_err();
        assert!(e.to_string().contains("wrong key"), "{e}");
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert!(EncryptKey::from_arg("short").is_err());
        let k = EncryptKey::from_arg("secretsecretsecretsecretsecret12").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
        assert_eq!(EncryptKey::from_arg(&"00".repeat(24)).unwrap().0.len(), 24);
    }
}
