#![doc = include_str!("../README.md")]

pub mod card;
pub mod dunning;
pub mod features;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod payment;
pub mod period;
pub mod plan_change;
pub mod pricing;
pub mod proration;
#[cfg(feature = "diesel")]
mod sql;
pub mod subscription;
mod words;

pub use features::{Feature, PlanFeatures};
pub use ids::{InvoiceId, PaymentMethodId, RefundId, SubscriptionId, TransactionId, UserId};
pub use invoice::{InvoiceKind, InvoiceStatus, LineKind};
pub use money::{AmountText, Currency, Money, MoneyError};
pub use payment::{KeyStatus, RefundStatus, TransactionStatus};
pub use period::BillingCycle;
pub use proration::{Price, Proration, ProrationError, prorate};
pub use subscription::{HistoryEntry, SubscriptionEvent, SubscriptionStatus, TransitionError};
