//! `q:pay:refund_initiation`: asks the gateway for a reserved refund (once per refund, by its key) and records the
//! outcome.

use billing_queue::worker::JobError;
use billing_queue::{Envelope, Job};

use crate::services::refunds::{self, RefundRequested};
use crate::state::AppState;

#[derive(Debug)]
pub struct ProcessRefund;

impl Job for ProcessRefund {
    type Payload = RefundRequested;
    type State = AppState;

    async fn run(state: &AppState, job: RefundRequested, _envelope: &Envelope) -> Result<(), JobError> {
        refunds::process(state, job.refund_id).await
    }
}
