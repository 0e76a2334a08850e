//! The migration sets of the in-process worlds.

use billing_config::ServiceKind;
use billing_testkit::MigrationSet;

pub const SUB: MigrationSet =
    MigrationSet { service: ServiceKind::Subscription, embedded: || subscription_service::MIGRATIONS };
pub const PAY: MigrationSet = MigrationSet { service: ServiceKind::Payment, embedded: || payment_service::MIGRATIONS };
