//! `xb-cli extract`: unpack an xbstream into a directory (the job of
//! `xbstream -x` / `mbstream -x`), or download a backup from object storage
//! (`--from URL`), optionally decrypting and decompressing.

use std::io::{BufReader, Read};
use std::path::PathBuf;

use anyhow::Context;
use xb_sink::{EncryptKey, ExtractOptions};

/// Options of `xb-cli extract`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// Stream to read; standard input when absent or `-`.
    #[arg(value_name = "FILE", conflicts_with = "from")]
    pub input: Option<PathBuf>,
    /// Download the backup at this object-storage URL instead
    /// (s3://BUCKET/NAME, azure://…, gs://…, file:///…): only a complete
    /// backup, every object checked against its manifest (size, XXH3-128).
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    #[command(flatten)]
    pub store: crate::objects::StoreArgs,
    /// Directory to extract into; created if absent. It must be empty
    /// unless --force-non-empty-directories is given. Existing files are
    /// never overwritten and symbolic links in it are never followed.
    #[arg(
        short = 'C',
        long = "directory",
        value_name = "DIR",
        default_value = "."
    )]
    pub directory: PathBuf,
    /// Decompress `.zst` and `.lz4` files on the way (names lose the suffix).
    #[arg(long)]
    pub decompress: bool,
    /// Decrypt `.xbcrypt` files: AES128, AES192 or AES256 (the key length must match).
    #[arg(long, value_name = "ALGO")]
    pub decrypt: Option<String>,
    /// Key for --decrypt: 16/24/32 raw bytes, or twice as many hex digits.
    #[arg(
        long,
        env = "XB_ENCRYPT_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub encrypt_key: Option<String>,
    /// File holding the raw key bytes for --decrypt.
    #[arg(long, value_name = "FILE", conflicts_with = "encrypt_key")]
    pub encrypt_key_file: Option<PathBuf>,
    /// Threads writing and decoding files (each file stays on one thread);
    /// with --from, objects downloaded at once.
    #[arg(short = 'p', long, default_value_t = 1, value_name = "N")]
    pub parallel: usize,
    /// fsync every file and directory before returning.
    #[arg(long)]
    pub sync: bool,
    /// Extract into a directory that already holds files (xtrabackup's
    /// option of the same name). A file the stream creates must still not
    /// exist, and symbolic links are still never followed.
    #[arg(long)]
    pub force_non_empty_directories: bool,
}

fn key(args: &ExtractArgs) -> anyhow::Result<Option<EncryptKey>> {
    let Some(algo) = &args.decrypt else {
        if args.encrypt_key.is_some() || args.encrypt_key_file.is_some() {
            anyhow::bail!(
                "a key was given without --decrypt\nhint: add --decrypt=AES256 (or AES128/AES192)"
            );
        }
        return Ok(None);
    };
    let bytes = match algo.to_ascii_uppercase().as_str() {
        "AES128" => 16,
        "AES192" => 24,
        "AES256" => 32,
        other => anyhow::bail!(
            "unknown --decrypt algorithm {other:?}\nhint: use AES128, AES192 or AES256"
        ),
    };
    let key = match (&args.encrypt_key, &args.encrypt_key_file) {
        (Some(k), _) => EncryptKey::from_arg(k)?,
        (None, Some(f)) => EncryptKey::from_file(f)?,
        (None, None) => anyhow::bail!(
            "--decrypt needs a key\nhint: give --encrypt-key, --encrypt-key-file or XB_ENCRYPT_KEY"
        ),
    };
    if key.len() != bytes {
        anyhow::bail!(
            "the key has {} bytes but {algo} needs {bytes}\nhint: check --decrypt against the key used for the backup",
            key.len()
        );
    }
    Ok(Some(key))
}

/// Runs `xb-cli extract`.
///
/// # Errors
/// Bad options, or the extraction error (it names the file and offset).
pub fn run(args: ExtractArgs) -> anyhow::Result<()> {
    let opts = ExtractOptions::default()
        .with_decompress(args.decompress)
        .with_key(key(&args)?)
        .with_sync(args.sync)
        .with_parallel(args.parallel)
        .with_force_non_empty_directories(args.force_non_empty_directories);
    if let Some(url) = &args.from {
        let loc = args.store.location(url)?;
        let st = xb_sink::object::fetch(
            &loc,
            &args.directory,
            &opts,
            xb_core::prepare::INCOMPLETE_MARKER,
        )?;
        tracing::info!(
            files = st.files,
            downloaded = st.stream_bytes,
            bytes_written = st.bytes_written,
            dir = %args.directory.display(),
            "downloaded and checked"
        );
        return Ok(());
    }
    let input: Box<dyn Read> = match &args.input {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot open stream {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdin().lock()),
    };
    let st = xb_sink::extract(
        BufReader::with_capacity(1 << 20, input),
        &args.directory,
        &opts,
    )?;
    tracing::info!(
        files = st.files,
        chunks = st.chunks,
        stream_bytes = st.stream_bytes,
        bytes_written = st.bytes_written,
        dir = %args.directory.display(),
        "extracted"
    );
    Ok(())
}
