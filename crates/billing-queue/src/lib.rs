#![doc = include_str!("../README.md")]

mod envelope;
mod policy;
mod queue;
mod scripts;

pub use envelope::{Envelope, NewJob};
pub use policy::{Policy, QueueName};
pub use queue::{Claimed, FailedJob, NackOutcome, Queue, QueueError, QueueStats};
