//! The xbstream container (`XBSTCK01`), as written by xtrabackup and
//! mariadb-backup (`mbstream`). A stream is a sequence of chunks; chunks of
//! different files interleave, chunks of one file come in order.
//!
//! Chunk layout, all integers little-endian:
//!
//! | offset     | size | field                                              |
//! |------------|------|----------------------------------------------------|
//! | 0          | 8    | magic `XBSTCK01`                                   |
//! | 8          | 1    | flags: 0x01 ignorable, 0x02 rewrite (MariaDB)      |
//! | 9          | 1    | type: `P` payload, `E` end of file, `S` seek, `R` rename, `D` delete |
//! | 10         | 4    | path length N (< 512)                              |
//! | 14         | N    | path, relative, `/`-separated                      |
//! | 14+N       | 8    | `P`: payload length L; `S`: new offset; `R`: u32 new path length + path |
//! | 22+N       | 8    | `P`: offset of the payload within the file         |
//! | 30+N       | 4    | `P`: zlib CRC-32 of the payload                    |
//! | 34+N       | L    | `P`: payload                                       |
//!
//! `E` and `D` chunks end after the path. The `S` type here is MariaDB's
//! seek; xtrabackup 8.0 reuses the letter for sparse chunks, which this
//! reader does not support.

mod read;
mod write;

pub use read::{Chunk, ChunkKind, MAX_PIECE, XbStreamReader};
pub use write::XbStreamWriter;

/// Every chunk starts with these eight bytes.
pub const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Flag bit: a reader may skip the chunk if it does not know its type.
pub const FLAG_IGNORABLE: u8 = 0x01;
/// Flag bit (MariaDB): the file is reopened for rewriting, not created.
pub const FLAG_REWRITE: u8 = 0x02;
/// Default coalescing size per open file: 1 MiB. xtrabackup uses 10 MiB
/// (`XB_STREAM_MIN_CHUNK_SIZE`); readers accept any size, and the smaller
/// buffer bounds memory per file and lets the usual 1 MiB+ copy buffers go
/// out without an extra copy.
pub const DEFAULT_CHUNK: usize = 1 << 20;
