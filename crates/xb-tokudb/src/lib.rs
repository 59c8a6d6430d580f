//! TokuDB hot-backup steps: checkpoint lock, discovery of data and log files.
