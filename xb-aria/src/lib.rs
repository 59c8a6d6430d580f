//! Aria table files (`.MAI` index, `.MAD` data) as a hot backup reads them.
//!
//! MariaDB can copy a transactional Aria table with page checksums while
//! the server writes it ("online backup safe"): every page carries a CRC,
//! so a torn read is seen and read again, and whatever changed after a
//! page was read is in the Aria log, which the server's Aria recovery
//! replays from the checkpoint in `aria_log_control` (copied before the
//! tables). Other Aria tables are copied while writes are blocked.
//!
//! Pure format code plus one positioned-read reader: no SQL, no threads.
//!
//! - [`control`]: `aria_log_control`, with the last log file raised to the
//!   newest one a backup copied;
//! - [`header`]: what the index file's header says (transactional, page
//!   checksums, block size, where key pages start);
//! - [`page`]: the page checksum check, for data and index pages;
//! - [`reader`]: a live file read page by page, bad pages re-read.

pub mod control;
pub mod header;
pub mod page;
pub mod reader;

pub use control::{Control, ControlError};
pub use header::{Capabilities, HeaderError, RedoFences};
pub use reader::{AriaFile, AriaReader, ReadError, RetryPolicy, read_capabilities, read_fences};
