//! The plan catalog in memory: every plan, parsed and checked once, reloaded when stale or changed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use billing_domain::pricing::{PlanPrice, SeatPrice};
use billing_domain::{BillingCycle, Money, PlanFeatures};
use billing_infra::DbPool;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::db;
use crate::db::models::PlanRow;
use crate::error::ServiceError;

/// A plan, parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub description: String,
    /// The price per seat, or the base fee when `per_seat` is set.
    pub price: Money,
    /// Seats above those included, each at a price of its own.
    pub per_seat: Option<SeatPrice>,
    pub cycle: BillingCycle,
    pub trial_period_days: u32,
    pub is_trial_plan: bool,
    pub converts_to_plan_id: Option<i32>,
    /// The features as stored (shown to customers).
    pub features_json: Value,
    pub features: PlanFeatures,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PlanRow> for Plan {
    type Error = ServiceError;

    fn try_from(row: PlanRow) -> Result<Self, Self::Error> {
        let bad = |what: &str| ServiceError::Internal(format!("plan {} has an invalid {what}", row.id));
        let currency = row.currency;
        Ok(Plan {
            id: row.id,
            price: Money::from_decimal(row.price, currency).map_err(|_| bad("price"))?,
            per_seat: match (row.seat_price, row.included_seats) {
                (Some(unit), Some(included)) => Some(SeatPrice {
                    unit_amount: Money::from_decimal(unit, currency).map_err(|_| bad("seat price"))?,
                    included_seats: u32::try_from(included).map_err(|_| bad("included seats"))?,
                }),
                _ => None,
            },
            cycle: row.billing_cycle,
            trial_period_days: u32::try_from(row.trial_period_days).map_err(|_| bad("trial length"))?,
            features: PlanFeatures::parse(&row.features).map_err(|_| bad("features"))?,
            code: row.code,
            name: row.name,
            description: row.description,
            is_trial_plan: row.is_trial_plan,
            converts_to_plan_id: row.converts_to_plan_id,
            features_json: row.features,
            is_active: row.is_active,
            created_at: row.created_at,
        })
    }
}

impl Plan {
    /// What a period of this plan costs, by seats.
    pub fn pricing(&self) -> PlanPrice {
        PlanPrice { base: self.price, per_seat: self.per_seat }
    }
}

/// How long another replica may serve a catalog that an admin changed elsewhere.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Every plan in memory; reloaded after `CACHE_TTL`, and at once after a change made through this process.
#[derive(Debug, Clone, Default)]
pub struct PlanCache {
    inner: Arc<RwLock<Option<Loaded>>>,
}

/// A catalog and when it was loaded.
type Loaded = (Instant, Arc<Vec<Plan>>);

impl PlanCache {
    /// Every plan (active or not), loading them when the cache is cold or stale.
    pub async fn all(&self, db: &DbPool) -> Result<Arc<Vec<Plan>>, ServiceError> {
        if let Ok(guard) = self.inner.read()
            && let Some((loaded, plans)) = guard.as_ref()
            && loaded.elapsed() < CACHE_TTL
        {
            return Ok(plans.clone());
        }
        let mut conn = db.get().await.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let rows = db::plans::all(&mut conn).await?;
        let plans = Arc::new(rows.into_iter().map(Plan::try_from).collect::<Result<Vec<_>, _>>()?);
        if let Ok(mut guard) = self.inner.write() {
            *guard = Some((Instant::now(), plans.clone()));
        }
        Ok(plans)
    }

    /// One plan, active or not.
    pub async fn get(&self, db: &DbPool, id: i32) -> Result<Option<Plan>, ServiceError> {
        Ok(self.all(db).await?.iter().find(|p| p.id == id).cloned())
    }

    /// Forgets the cached catalog (after a change).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.inner.write() {
            *guard = None;
        }
    }
}
