//! `xb_manifest.json`: every object of a backup with its size and SHA-256,
//! computed over the bytes as they went up (after compression and
//! encryption), so a download is checked without a key and without trusting
//! the store. It is the last object written before the incomplete marker is
//! removed: a backup without it never completed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's object name, at the top of the backup.
pub const MANIFEST: &str = "xb_manifest.json";

const FORMAT: &str = "xb-manifest";

/// One object of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Backup-relative name, as in a directory backup (`db/t.ibd.zst`).
    pub path: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes, lower-case hex.
    pub sha256: String,
}

/// The list of a backup's objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    format: String,
    version: u32,
    /// The objects, sorted by name.
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// A manifest of these entries.
    #[must_use]
    pub fn new(entries: &BTreeMap<String, (u64, String)>) -> Self {
        Manifest {
            format: FORMAT.into(),
            version: 1,
            files: entries
                .iter()
                .map(|(path, (size, sha256))| ManifestEntry {
                    path: path.clone(),
                    size: *size,
                    sha256: sha256.clone(),
                })
                .collect(),
        }
    }

    /// The manifest as stored.
    ///
    /// # Errors
    /// Never in practice (plain strings and numbers).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }

    /// Reads a stored manifest; `None` when it is not one of ours.
    #[must_use]
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Manifest>(bytes)
            .ok()
            .filter(|m| m.format == FORMAT && m.version == 1)
    }

    /// Bytes of every object listed.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_and_a_foreign_document_is_not_one() {
        let mut e = BTreeMap::new();
        e.insert("b/t.ibd".to_string(), (16384, "ab".repeat(32)));
        e.insert("a".to_string(), (0, "cd".repeat(32)));
        let m = Manifest::new(&e);
        let back = Manifest::from_json(&m.to_json().expect("json")).expect("reads back");
        assert_eq!(back, m);
        assert_eq!(back.files[0].path, "a", "sorted by name");
        assert_eq!(back.total_bytes(), 16384);
        assert!(Manifest::from_json(br#"{"format":"other","version":1,"files":[]}"#).is_none());
        assert!(Manifest::from_json(b"not json").is_none());
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
