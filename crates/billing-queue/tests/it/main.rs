//! The queue crate's integration tests, in one test binary (one link instead of one per file).

mod queue;
mod workers;
