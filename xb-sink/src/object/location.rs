//! Where a backup lives in object storage: a URL turned into a store client
//! and a prefix, with credentials found the way each cloud's own tools find
//! them (environment first, then the cloud's config files).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::SinkError;

/// How xb talks to a store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectOptions {
    /// Bytes per multipart part; a file at most this big is one PUT.
    /// S3 wants at least 5 MiB for every part but the last.
    pub part_size: usize,
    /// Parts in flight at once over the whole backup. Memory is bounded by
    /// `(files open at once + concurrency) × part_size`.
    pub concurrency: usize,
    /// Retries of a retryable failure (5xx, 429, a broken connection), with
    /// exponential backoff; other failures are not retried.
    pub max_retries: usize,
    /// No request is retried once this long has passed since its first try.
    pub retry_timeout: Duration,
    /// Settings of the store's client by the `object_store` crate's names
    /// (`aws_endpoint`, `aws_access_key_id`, `azure_storage_account_key`,
    /// …), over what the environment and config files say: for programs
    /// that embed xb and keep credentials elsewhere.
    pub config: Vec<(String, String)>,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            part_size: 8 << 20,
            concurrency: 4,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            config: Vec::new(),
        }
    }
}

impl ObjectOptions {
    /// Sets [`Self::part_size`] (at least 5 MiB, S3's floor).
    #[must_use]
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(5 << 20);
        self
    }

    /// Sets [`Self::concurrency`] (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, parts: usize) -> Self {
        self.concurrency = parts.max(1);
        self
    }

    /// Adds one of [`Self::config`].
    #[must_use]
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets [`Self::max_retries`] and [`Self::retry_timeout`].
    #[must_use]
    pub fn with_retries(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_timeout = timeout;
        self
    }
}

/// A store and the prefix a backup (or a set of backups) lives under.
#[derive(Clone)]
pub struct ObjectLocation {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    /// `scheme://bucket/prefix`, never with credentials: for messages.
    pub(crate) url: String,
}

impl std::fmt::Debug for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectLocation({})", self.url)
    }
}

/// Two locations are the same place when their URLs are.
impl PartialEq for ObjectLocation {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for ObjectLocation {}

/// Whether `target` names an object store rather than a local path.
#[must_use]
pub fn is_object_url(target: &str) -> bool {
    ["s3://", "s3a://", "azure://", "az://", "gs://", "file://"]
        .iter()
        .any(|p| target.starts_with(p))
}

impl ObjectLocation {
    /// Parses `url` and builds the store's client. Nothing is sent yet.
    ///
    /// # Errors
    /// [`SinkError::ObjectUrl`]: an unknown scheme, no bucket, or a client
    /// the store's library refuses to build (it says why).
    pub fn parse(url: &str, opts: &ObjectOptions) -> Result<Self, SinkError> {
        let bad = |reason: String| SinkError::ObjectUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL (they would end up in logs)".into(),
            ));
        }
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: opts.max_retries,
            retry_timeout: opts.retry_timeout,
        };
        let scheme = parsed.scheme();
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            "s3" | "s3a" => {
                let mut b = s3_builder(&parsed);
                for (k, v) in config_keys(opts).map_err(bad)? {
                    // an http:// endpoint the caller named is meant
                    if matches!(k, AmazonS3ConfigKey::Endpoint) && v.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                    b = b.with_config(k, v);
                }
                let store = b
                    .with_retry(retry)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), parsed.path())
            }
            "azure" | "az" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(parsed.as_str());
                for (k, v) in config_keys(opts).map_err(bad)? {
                    b = b.with_config(k, v);
                }
                let store = b
                    .with_retry(retry)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), parsed.path())
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(parsed.as_str());
                for (k, v) in config_keys(opts).map_err(bad)? {
                    b = b.with_config(k, v);
                }
                let store = b
                    .with_retry(retry)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), parsed.path())
            }
            "file" => {
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad(
                        "a file:// URL has no host: write file:///DIR/NAME".into()
                    ));
                }
                (Arc::new(LocalFileSystem::new()), parsed.path())
            }
            other => return Err(bad(format!("unknown scheme {other:?}"))),
        };
        if scheme != "file" && parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no bucket named".into()));
        }
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
        let host = parsed.host_str().unwrap_or_default();
        Ok(ObjectLocation {
            store,
            url: format!("{scheme}://{host}/{prefix}"),
            prefix,
        })
    }

    /// The location as `scheme://bucket/prefix`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The location one level down, `NAME` under this prefix.
    #[must_use]
    pub fn child(&self, name: &str) -> Self {
        let prefix = self.prefix.clone().join(name);
        let url = format!("{}/{name}", self.url.trim_end_matches('/'),);
        ObjectLocation {
            store: Arc::clone(&self.store),
            prefix,
            url,
        }
    }

    /// The store's path of `rel` (a backup-relative, `/`-separated name).
    pub(crate) fn path_of(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/') {
            p = p.join(part);
        }
        p
    }

    /// `rel` of a store path under this prefix.
    pub(crate) fn rel_of(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path.prefix_match(&self.prefix)?.collect();
        let names: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
        (!names.is_empty()).then(|| names.join("/"))
    }
}

/// [`ObjectOptions::config`] as the keys of one store's builder.
fn config_keys<K>(opts: &ObjectOptions) -> Result<Vec<(K, &str)>, String>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    opts.config
        .iter()
        .map(|(k, v)| {
            Ok((
                k.parse().map_err(|e: object_store::Error| e.to_string())?,
                v.as_str(),
            ))
        })
        .collect()
}

/// The S3 client: `AWS_*` variables first (as the AWS CLI reads them), then
/// the shared `credentials` and `config` files of the profile in
/// `AWS_PROFILE` (or `default`) for what the environment does not set. An
/// `http://` endpoint the user named is allowed without `AWS_ALLOW_HTTP`.
fn s3_builder(url: &url::Url) -> AmazonS3Builder {
    use AmazonS3ConfigKey as K;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut b = AmazonS3Builder::from_env()
        .with_url(url.as_str())
        // first: it replaces every client option, `allow_http` included
        .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(10)));
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let creds_file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config_file = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    if env("AWS_ACCESS_KEY_ID").is_none() {
        let section = ini_section(creds_file.as_deref(), &profile);
        for (key, cfg) in [
            ("aws_access_key_id", K::AccessKeyId),
            ("aws_secret_access_key", K::SecretAccessKey),
            ("aws_session_token", K::Token),
        ] {
            if let Some(v) = section.iter().find(|(k, _)| k == key) {
                b = b.with_config(cfg, v.1.clone());
            }
        }
    }
    // the config file names its sections `profile NAME`, but `default`
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let config = ini_section(config_file.as_deref(), &config_section);
    let find = |key: &str| config.iter().find(|(k, _)| k == key).map(|kv| kv.1.clone());
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| find("region"))
        .unwrap_or_else(|| "us-east-1".into());
    b = b.with_region(region);
    let endpoint = env("AWS_ENDPOINT_URL")
        .or_else(|| env("AWS_ENDPOINT"))
        .or_else(|| find("endpoint_url"));
    if let Some(e) = endpoint {
        if e.starts_with("http://") {
            b = b.with_allow_http(true);
        }
        b = b.with_endpoint(e);
    }
    b
}

/// The `key = value` lines of `[section]` in an INI file (the AWS shared
/// files); nothing when the file or the section is absent.
fn ini_section(file: Option<&std::path::Path>, section: &str) -> Vec<(String, String)> {
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return Vec::new();
    };
    parse_ini_section(&text, section)
}

fn parse_ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_files_sections_are_read_by_name() {
        let text = "[default]\naws_access_key_id = A1\n# note\n[profile ops]\nregion=eu-west-1\nendpoint_url = http://127.0.0.1:9000\n[ops]\naws_access_key_id=B2\n";
        assert_eq!(
            parse_ini_section(text, "default"),
            vec![("aws_access_key_id".into(), "A1".into())]
        );
        assert_eq!(
            parse_ini_section(text, "profile ops"),
            vec![
                ("region".into(), "eu-west-1".into()),
                ("endpoint_url".into(), "http://127.0.0.1:9000".into())
            ]
        );
        assert!(parse_ini_section(text, "missing").is_empty());
    }

    #[test]
    fn urls_name_a_bucket_and_a_prefix_and_never_credentials() {
        let o = ObjectOptions::default();
        let l = ObjectLocation::parse("s3://bkp/nightly/2026-12-03", &o).expect("an s3 url");
        assert_eq!(l.url(), "s3://bkp/nightly/2026-12-03");
        assert_eq!(
            l.path_of("db/t.ibd").as_ref(),
            "nightly/2026-12-03/db/t.ibd"
        );
        assert_eq!(
            l.rel_of(&Path::from("nightly/2026-12-03/db/t.ibd"))
                .as_deref(),
            Some("db/t.ibd")
        );
        assert_eq!(l.child("x").url(), "s3://bkp/nightly/2026-12-03/x");
        for bad in [
            "s3://AK:SK@bkp/x",
            "ftp://h/x",
            "s3:///x",
            "file://host/x",
            "nonsense",
        ] {
            assert!(
                matches!(
                    ObjectLocation::parse(bad, &o),
                    Err(SinkError::ObjectUrl { .. })
                ),
                "{bad} accepted"
            );
        }
        assert!(is_object_url("gs://b/x") && !is_object_url("/backups/x"));
    }
}
