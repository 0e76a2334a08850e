//! The queue crate's integration tests, in one test binary (one link instead of one per file).

mod jobs;
mod queue;
mod workers;
