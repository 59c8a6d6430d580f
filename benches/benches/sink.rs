//! Stream write and extract throughput of xb-sink: plain, zstd level 1
//! (2 workers) and lz4, on 64 MiB of page-like data, compared in the same
//! run with the real `mbstream -x` on the same plain stream and with
//! `zstd -1 -T2` on the same bytes. Peak RSS of the bench process is printed
//! at the end (`VmHWM`).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xb_sink::{Compress, Compression, Datasink, ExtractOptions, SharedBuf, XbStreamWriter};

const TOTAL: usize = 64 << 20;

/// Page-like data: a third random, the rest short repeating runs (compresses ~2.5x).
fn pagey(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|i| {
            if (i / 512) % 3 == 0 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            } else {
                (i % 7) as u8
            }
        })
        .collect()
}

fn files() -> BTreeMap<String, Vec<u8>> {
    (0..4)
        .map(|i| (format!("db/t{i}.ibd"), pagey(TOTAL / 4, i)))
        .collect()
}

/// Writes the files from one thread each, as a parallel copy does, in 1 MiB
/// writes. With `keep` the stream is collected in memory (to feed the
/// extract benches); otherwise it goes to `io::sink()`, so the write figure
/// is the sink chain's own cost (CRC, framing, locking, compression).
fn write_stream(
    files: &BTreeMap<String, Vec<u8>>,
    algo: Option<Compression>,
    keep: bool,
) -> Vec<u8> {
    let out = SharedBuf::default();
    let w: Box<dyn Write + Send> = if keep {
        Box::new(out.clone())
    } else {
        Box::new(std::io::sink())
    };
    let stream: Box<dyn Datasink> = Box::new(XbStreamWriter::new(w));
    let sink: Box<dyn Datasink> = match algo {
        None => stream,
        Some(a) => Box::new(Compress::new(stream, a, 2)),
    };
    std::thread::scope(|s| {
        for (name, data) in files {
            let sink = &sink;
            s.spawn(move || {
                let Ok(mut f) = sink.open(name, data.len() as u64) else {
                    return;
                };
                for piece in data.chunks(1 << 20) {
                    if f.write(piece).is_err() {
                        return;
                    }
                }
                let _ = f.close();
            });
        }
    });
    let _ = sink.finish();
    drop(sink);
    out.take()
}

fn extract_once(stream: &[u8], decompress: bool, parallel: usize) -> Duration {
    let Ok(dir) = tempfile::tempdir() else {
        return Duration::ZERO;
    };
    let t = Instant::now();
    let r = xb_sink::extract(
        stream,
        dir.path(),
        &ExtractOptions::default()
            .with_decompress(decompress)
            .with_parallel(parallel),
    );
    let el = t.elapsed();
    assert!(r.is_ok(), "extract failed: {r:?}");
    el
}

fn db_sh() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/db.sh")
}

fn mbstream_once(stream_file: &std::path::Path) -> Duration {
    let Ok(dir) = tempfile::tempdir() else {
        return Duration::ZERO;
    };
    let Ok(input) = std::fs::File::open(stream_file) else {
        return Duration::ZERO;
    };
    let t = Instant::now();
    let st = Command::new(db_sh())
        .args(["mariadb1011", "exec", "mbstream", "-x", "-C"])
        .arg(dir.path())
        .stdin(input)
        .status();
    let el = t.elapsed();
    assert!(st.is_ok_and(|s| s.success()), "mbstream failed");
    el
}

fn zstd_cli_once(data: &[u8]) -> Duration {
    let t = Instant::now();
    let child = Command::new("zstd")
        .args(["-1", "-T2", "-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Duration::ZERO;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(data);
    }
    let _ = child.wait();
    t.elapsed()
}

/// Peak resident set of this process in KiB (`VmHWM`), 0 when unknown.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let files = files();
    let all: Vec<u8> = files.values().flatten().copied().collect();
    // memory of the write chains themselves: the peak may only grow by their
    // buffers (per file: 1 MiB stream buffer, (threads + 2) MiB compression jobs)
    let before = peak_rss_kib();
    for algo in [
        None,
        Some(Compression::Zstd { level: 1 }),
        Some(Compression::Lz4),
    ] {
        write_stream(&files, algo, false);
    }
    eprintln!(
        "peak RSS before the write chains: {before} KiB, after: {} KiB (4 files written at once)",
        peak_rss_kib()
    );
    for (name, algo) in [
        ("plain", None),
        ("zstd1", Some(Compression::Zstd { level: 1 })),
    ] {
        let p = std::env::temp_dir().join(format!("xb-sink-bench-{name}.xb"));
        if std::fs::write(&p, write_stream(&files, algo, true)).is_ok() {
            eprintln!("stream for RSS checks of `xb-cli extract`: {}", p.display());
        }
    }
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));

    let modes = [
        ("plain", None),
        ("zstd1", Some(Compression::Zstd { level: 1 })),
        ("lz4", Some(Compression::Lz4)),
    ];
    for (name, algo) in modes {
        g.bench_function(format!("write/{name}"), |b| {
            b.iter(|| write_stream(&files, algo, false))
        });
        let stream = write_stream(&files, algo, true);
        eprintln!(
            "{name}: stream is {} bytes for {TOTAL} bytes of data",
            stream.len()
        );
        g.bench_function(format!("extract/{name}"), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| extract_once(&stream, algo.is_some(), 1))
                    .sum()
            })
        });
        g.bench_function(format!("extract-p2/{name}"), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| extract_once(&stream, algo.is_some(), 2))
                    .sum()
            })
        });
        if algo.is_none() {
            if let Ok(f) = tempfile::NamedTempFile::new() {
                if std::fs::write(f.path(), &stream).is_ok() {
                    g.bench_function("extract/mbstream", |b| {
                        b.iter_custom(|n| (0..n).map(|_| mbstream_once(f.path())).sum())
                    });
                }
            }
        }
    }
    g.bench_function("compress/zstd-cli-1-T2", |b| {
        b.iter_custom(|n| (0..n).map(|_| zstd_cli_once(&all)).sum())
    });
    g.finish();
    eprintln!("peak RSS of the bench process: {} KiB", peak_rss_kib());
}

criterion_group!(benches, bench);
criterion_main!(benches);
