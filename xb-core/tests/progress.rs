//! An embedding program sees the backup's progress: phases in order, bytes
//! adding up to the total, and the redo copier's LSN moving forward.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::sync::Mutex;

use xb_core::plan::BackupPlan;
use xb_core::run::{ConnectOptions, Progress};
use xb_testing::server::{Flavor, TestServer};

#[derive(Default)]
struct Seen {
    phases: Mutex<Vec<String>>,
    bytes: Mutex<u64>,
    total: Mutex<u64>,
    redo: Mutex<Vec<u64>>,
    lag: Mutex<Vec<xb_core::run::lag::LagNow>>,
}

impl Progress for Seen {
    fn phase(&self, name: &str) {
        self.phases.lock().unwrap().push(name.to_string());
    }
    fn bytes(&self, _file: &str, n: u64) {
        *self.bytes.lock().unwrap() += n;
    }
    fn total(&self, bytes: u64) {
        *self.total.lock().unwrap() = bytes;
    }
    fn redo(&self, lsn: u64) {
        self.redo.lock().unwrap().push(lsn);
    }
    fn redo_lag(&self, now: xb_core::run::lag::LagNow) {
        self.lag.lock().unwrap().push(now);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reports_phases_bytes_and_redo() {
    let s = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mut c = ConnectOptions::default();
    c.host = Some("127.0.0.1".into());
    c.port = Some(s.port());
    c.user = "xb".into();
    c.password = Some("xb".into());
    let seen = Seen::default();
    let summary = BackupPlan::builder(c)
        .target_dir(s.scratch("b"))
        .throttle(4 << 20) // slow enough for the redo and its lag to be sampled
        .build()
        .unwrap()
        .run(&seen)
        .await
        .unwrap();
    let phases = seen.phases.lock().unwrap().clone();
    let copy = phases
        .iter()
        .position(|p| p == "copy InnoDB tablespaces")
        .unwrap();
    let commit = phases
        .iter()
        .position(|p| p == "BACKUP STAGE BLOCK_COMMIT")
        .unwrap();
    assert!(copy < commit, "{phases:?}");
    let bytes = *seen.bytes.lock().unwrap();
    assert_eq!(bytes, summary.bytes, "every byte copied was reported");
    assert!(*seen.total.lock().unwrap() >= bytes - (1 << 20));
    let redo = seen.redo.lock().unwrap().clone();
    assert!(
        !redo.is_empty(),
        "the redo LSN was reported during the copy"
    );
    assert!(
        redo.windows(2).all(|w| w[0] <= w[1]),
        "the copied LSN never goes back"
    );
    assert!(redo[0] >= summary.start_lsn && *redo.last().unwrap() <= summary.last_lsn);
    // the lag behind the server, against the log's capacity (10.11's
    // default 96 MiB file less its 12 KiB header)
    let lag = seen.lag.lock().unwrap().clone();
    assert!(!lag.is_empty(), "the redo lag was reported during the copy");
    let capacity = 96 * (1 << 20) - 12_288;
    assert!(
        lag.iter()
            .all(|l| l.capacity == capacity && l.lag < capacity),
        "{lag:?}"
    );
    let report = summary.redo.expect("the summary has the lag figures");
    assert_eq!(report.capacity, capacity);
    assert!(
        report.samples >= 2 && report.max_lag < capacity,
        "{report:?}"
    );
}
