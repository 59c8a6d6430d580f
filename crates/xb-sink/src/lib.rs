//! Datasinks: every byte a backup writes goes through a chain of sinks
//! (local directory, xbstream, compression, encryption, throttling).
