//! The wire between the services, typed once for both sides (see README.md).

pub mod envelope;
pub mod events;
pub mod internal;

pub use envelope::Envelope;
pub use events::{PaymentEvent, PaymentEventDetail};
