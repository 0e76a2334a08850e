//! What the payment service calls: the payment gateway (Stripe's API, or the simulator) and the subscription
//! service's internal API.

pub mod gateway;
pub mod subscriptions;

pub use subscriptions::SubscriptionClient;
