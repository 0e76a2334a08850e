//! Typed jobs: a payload type names its queue and action, and a [`Job`] says what handles it, so a service
//! declares its consumers as types (`consumer::<Charge>(…)`) and every enqueue and every handler agree on the
//! payload's shape at compile time.

use std::future::Future;
use std::sync::Arc;

use billing_infra::Redis;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::worker::{Consumer, Handler, JobError};
use crate::{Envelope, NewJob, Queue, QueueName};

/// What a job carries, and where it goes.
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {
    /// The queue jobs of this payload are pushed to.
    const QUEUE: QueueName;
    /// The envelope's `action`.
    const ACTION: &'static str;

    /// The action of this job (the payload type's, unless one payload type carries several).
    fn action(&self) -> String {
        Self::ACTION.to_owned()
    }

    /// A job carrying this payload, deduplicated on `idempotency_key` by its handler.
    fn job(&self, idempotency_key: impl Into<String>) -> NewJob {
        NewJob::new(self.action(), idempotency_key, serde_json::to_value(self).unwrap_or_default())
    }
}

/// A handler of one payload type.
pub trait Job: Send + Sync + 'static {
    type Payload: Payload;
    /// What the handler needs (the service's state).
    type State: Clone + Send + Sync + 'static;
    /// Jobs of this kind that run at once in one process.
    const CONCURRENCY: usize = 4;

    /// Handles one delivery (idempotent: a job may be delivered more than once).
    fn run(
        state: &Self::State,
        payload: Self::Payload,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// The consumer of `J`'s queue in this process. A payload that does not read as `J::Payload` can never succeed:
/// it fails at once, named in the failed list.
pub fn consumer<J: Job>(redis: &Redis, state: J::State) -> Consumer {
    let handler: Handler = Arc::new(move |envelope: Envelope| {
        let state = state.clone();
        Box::pin(async move {
            let payload = serde_json::from_value::<J::Payload>(envelope.payload.clone()).map_err(|e| {
                JobError::Permanent(format!("the {} job's payload is unreadable: {e}", <J::Payload>::ACTION))
            })?;
            J::run(&state, payload, &envelope).await
        })
    });
    Consumer { queue: Queue::new(redis.clone(), <J::Payload>::QUEUE), handler, concurrency: J::CONCURRENCY }
}
