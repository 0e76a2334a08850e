//! `q:sub:usage_sync`: folds the usage counted in Redis into PostgreSQL (one fold request per second at most).

use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job};

use super::retry;
use crate::services::usage::{self, UsageFold};
use crate::state::AppState;

#[derive(Debug)]
pub struct UsageSync;

impl Job for UsageSync {
    type Payload = UsageFold;
    type State = AppState;
    // One fold at a time: folds of one counter never race.
    const CONCURRENCY: usize = 1;

    async fn run(state: &AppState, _job: UsageFold, _envelope: &Envelope) -> Result<(), JobError> {
        usage::sync(state).await.map(|_| ()).map_err(retry)
    }
}
