//! Shared helpers for the criterion benchmarks in `benches/benches/`.
//! End-to-end benchmark scripts live in `benches/e2e/`.
