//! The one error type of the crate. Every variant names the file (or the
//! stream offset) it is about, so a DBA reading the message knows where to look.

use std::io;

/// What went wrong in a sink, a stream reader or an extraction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The file system is full (ENOSPC); a backup cannot continue.
    #[error(
        "no space left on device while writing {path}\nhint: free space on the target file system or choose another target"
    )]
    NoSpace {
        /// The file being written.
        path: String,
    },
    /// Any other I/O failure.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or stream concerned.
        path: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A path that would land outside the target (absolute, `..`, symlink).
    #[error(
        "refusing unsafe path {path:?}: {reason}\nhint: the stream may be corrupt or malicious; nothing was written outside the target"
    )]
    UnsafePath {
        /// The path as found in the stream or given by the caller.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The target directory already holds files.
    #[error(
        "target directory {dir} is not empty\nhint: choose a new directory; xb never writes into a directory that holds files"
    )]
    NotEmpty {
        /// The directory.
        dir: String,
    },
    /// An extraction target that already holds something, and the caller
    /// did not ask to extract into a non-empty directory.
    #[error(
        "target directory {dir} is not empty: it holds {entry}\nhint: extract into a new or empty directory, or pass --force-non-empty-directories to extract into this one anyway (a file the stream creates must still not exist, and symbolic links are never followed)"
    )]
    TargetNotEmpty {
        /// The directory.
        dir: String,
        /// One entry found in it.
        entry: String,
    },
    /// A symbolic link in the target stands where the stream puts a file or
    /// a directory; it is refused, never followed, so nothing is written
    /// outside the target through it.
    #[error(
        "refusing to write {path}: {link} is a symbolic link\nhint: xb never writes through symbolic links in the target; remove {link} or extract into a new directory"
    )]
    Symlink {
        /// The path as found in the stream (or given by the caller).
        path: String,
        /// The link, as a full path.
        link: String,
    },
    /// A file to be extracted already exists; extraction never overwrites.
    #[error(
        "{path} already exists\nhint: extract into an empty directory; xb never overwrites files"
    )]
    Exists {
        /// The existing file.
        path: String,
    },
    /// The stream is not a well-formed xbstream.
    #[error("corrupt xbstream at offset {offset}: {what}")]
    Corrupt {
        /// Byte offset in the stream where the bad chunk starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A chunk's CRC-32 does not match its payload.
    #[error(
        "invalid checksum in chunk of {path} at stream offset {offset}: stored {stored:#010x}, computed {computed:#010x}\nhint: the stream was damaged in transit or on disk"
    )]
    Checksum {
        /// File the chunk belongs to.
        path: String,
        /// Stream offset of the chunk header.
        offset: u64,
        /// CRC stored in the chunk.
        stored: u32,
        /// CRC of the payload as read.
        computed: u32,
    },
    /// A payload chunk does not continue the file where the previous ended.
    #[error("out-of-order chunk for {path}: chunk offset {got:#x}, expected offset {want:#x}")]
    OutOfOrder {
        /// File the chunk belongs to.
        path: String,
        /// Offset carried by the chunk.
        got: u64,
        /// Bytes of the file seen so far.
        want: u64,
    },
    /// A compressed file cannot be decoded.
    #[error("cannot decompress {path}: {what}")]
    Decompress {
        /// The compressed file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// An encrypted file cannot be decoded or fails its SHA-256 check.
    #[error(
        "cannot decrypt {path}: {what}\nhint: check that the key is the one used for the backup"
    )]
    Decrypt {
        /// The encrypted file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The encryption key is unusable.
    #[error(
        "bad encryption key: {what}\nhint: give 16, 24 or 32 raw bytes (or twice as many hex digits) with --encrypt-key, or a key file of that size"
    )]
    Key {
        /// What is wrong (never the key itself).
        what: String,
    },
    /// A compression worker failed or vanished.
    #[error("compression of {path} failed: {what}")]
    Compress {
        /// The file being compressed.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// An object-store URL xb cannot use.
    #[error(
        "cannot use {url:?} as a backup location: {reason}\nhint: give s3://BUCKET/NAME, azure://CONTAINER/NAME, gs://BUCKET/NAME or file:///DIR/NAME"
    )]
    ObjectUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store refused the credentials (401/403).
    #[error(
        "object store {url} refused the credentials for {path}: {detail}\nhint: check the store's credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials and AWS_PROFILE), AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or GOOGLE_APPLICATION_CREDENTIALS; and that they may write to this bucket"
    )]
    ObjectAuth {
        /// The store and bucket.
        url: String,
        /// The object or prefix asked for.
        path: String,
        /// The store's answer.
        detail: String,
    },
    /// The bucket (container) does not exist.
    #[error(
        "object store {url}: the bucket does not exist ({detail})\nhint: create the bucket first (xb never creates buckets), or fix the bucket name in the URL"
    )]
    NoBucket {
        /// The store and bucket.
        url: String,
        /// The store's answer.
        detail: String,
    },
    /// A request failed for good, after the retries a retryable failure gets.
    #[error(
        "object store {url}: {op} {path} failed: {detail}\nhint: the store did not accept the request, even after retries; check the endpoint (AWS_ENDPOINT_URL for an S3-compatible store), the network and the store's health; what was written is an incomplete backup: start again under a new name"
    )]
    ObjectStore {
        /// The store and bucket.
        url: String,
        /// What was being done (`upload`, `list`, …).
        op: &'static str,
        /// The object.
        path: String,
        /// The store's answer.
        detail: String,
    },
    /// The final listing does not show an object as it was uploaded.
    #[error(
        "object store {url}: {path} {problem} after its upload was acknowledged\nhint: the store lost or changed an object; the backup stays marked incomplete: start again under a new name"
    )]
    ObjectCheck {
        /// The store and bucket.
        url: String,
        /// The object.
        path: String,
        /// What the listing showed (missing, a size, another ETag).
        problem: String,
    },
    /// A downloaded object differs from what the backup's manifest says.
    #[error(
        "{url}: {path} does not match the backup's manifest: {problem}\nhint: the object was changed or damaged in the store; this file of the backup cannot be trusted"
    )]
    ObjectMismatch {
        /// The backup's location.
        url: String,
        /// The object.
        path: String,
        /// Size or SHA-256 found against the one expected.
        problem: String,
    },
    /// The location holds no complete backup (the incomplete marker, or no manifest).
    #[error(
        "{url} is not a complete backup: {why}\nhint: a backup that was interrupted is never restored; use a backup `xb-cli list` shows as complete"
    )]
    IncompleteBackup {
        /// The backup's location.
        url: String,
        /// What shows it.
        why: String,
    },
}

impl SinkError {
    /// Whether the error is an object store's (its location is then an
    /// incomplete backup, or was never touched).
    #[must_use]
    pub fn is_object_store(&self) -> bool {
        matches!(
            self,
            SinkError::ObjectUrl { .. }
                | SinkError::ObjectAuth { .. }
                | SinkError::NoBucket { .. }
                | SinkError::ObjectStore { .. }
                | SinkError::ObjectCheck { .. }
                | SinkError::ObjectMismatch { .. }
                | SinkError::IncompleteBackup { .. }
        )
    }

    /// Wraps an I/O error about `path`, turning ENOSPC into [`SinkError::NoSpace`].
    #[must_use]
    pub fn io(path: impl std::fmt::Display, source: io::Error) -> Self {
        if source.raw_os_error() == Some(28) || source.kind() == io::ErrorKind::StorageFull {
            SinkError::NoSpace {
                path: path.to_string(),
            }
        } else {
            SinkError::Io {
                path: path.to_string(),
                source,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_says_so_and_names_the_file() {
        let e = SinkError::io("db/t.ibd", io::Error::from_raw_os_error(28));
        let s = e.to_string();
        assert!(s.contains("no space left on device"), "{s}");
        assert!(s.contains("db/t.ibd"), "{s}");
        let e = SinkError::io("x", io::Error::from_raw_os_error(5));
        assert!(matches!(e, SinkError::Io { .. }));
    }
}
