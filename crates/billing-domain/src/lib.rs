#![doc = include_str!("../README.md")]

pub mod card;
pub mod dunning;
pub mod features;
pub mod invoice;
pub mod money;
pub mod period;
pub mod proration;
pub mod subscription;

pub use features::{Feature, PlanFeatures};
pub use money::{AmountText, Currency, Money, MoneyError};
pub use period::BillingCycle;
pub use proration::{Price, Proration, ProrationError, prorate};
pub use subscription::{SubscriptionEvent, SubscriptionStatus, TransitionError};
