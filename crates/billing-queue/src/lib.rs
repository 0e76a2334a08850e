#![doc = include_str!("../README.md")]

mod envelope;
pub mod job;
pub mod outbox;
mod policy;
mod queue;
pub mod scheduler;
mod scripts;
pub mod worker;

pub use envelope::{Envelope, NewJob};
pub use job::{Job, Payload, consumer};
pub use policy::{Policy, QueueName, set_time_scale};
pub use queue::{Claimed, FailedJob, NackOutcome, Queue, QueueError, QueueStats};
