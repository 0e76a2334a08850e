//! The development seed: the plan catalog of API.md and an admin account. Idempotent.

use billing_auth::Role;
use billing_domain::{BillingCycle, Currency, UserId};
use diesel_async::AsyncConnection;
use rust_decimal::Decimal;
use serde_json::json;

use crate::db;
use crate::db::models::{NewUser, PlanChanges};
use crate::error::ServiceError;

/// The development admin (printed by `env-manager.sh seed`; never created in staging or production).
pub const DEV_ADMIN_EMAIL: &str = "admin@billing.local";
/// Its password: public, like every development secret.
pub const DEV_ADMIN_PASSWORD: &str = "dev-only-Admin-2026";

fn plan(
    code: &str,
    name: &str,
    description: &str,
    price: Decimal,
    cycle: BillingCycle,
    features: serde_json::Value,
) -> PlanChanges {
    PlanChanges {
        code: Some(code.to_owned()),
        name: Some(name.to_owned()),
        description: Some(description.to_owned()),
        price: Some(price),
        currency: Currency::from_code("USD"),
        billing_cycle: Some(cycle),
        trial_period_days: Some(0),
        is_trial_plan: Some(false),
        converts_to_plan_id: Some(None),
        features: Some(features),
        is_active: Some(true),
        ..PlanChanges::default()
    }
}

/// Creates the seed catalog (plans 1–5 on a fresh database) unless the plans exist; returns how many were added.
pub async fn seed_catalog(conn: &mut diesel_async::AsyncPgConnection) -> Result<usize, ServiceError> {
    let mut trial = plan(
        "basic_trial",
        "Basic Trial",
        "30 days of Basic, free, no card needed",
        Decimal::ZERO,
        BillingCycle::Monthly,
        json!({"api_calls": {"limit": 1000}, "storage": {"limit": "1GB"}}),
    );
    trial.trial_period_days = Some(30);
    trial.is_trial_plan = Some(true);
    let catalog = [
        trial,
        plan(
            "basic",
            "Basic",
            "For individuals",
            Decimal::new(2999, 2),
            BillingCycle::Monthly,
            json!({"api_calls": {"limit": 10000}, "storage": {"limit": "10GB"}}),
        ),
        plan(
            "pro",
            "Pro",
            "For growing teams",
            Decimal::new(9900, 2),
            BillingCycle::Monthly,
            json!({"api_calls": {"limit": 100000}, "storage": {"limit": "100GB"}, "priority_support": true}),
        ),
        plan(
            "enterprise",
            "Enterprise",
            "For organisations",
            Decimal::new(29900, 2),
            BillingCycle::Monthly,
            json!({"api_calls": {"limit": 1000000}, "storage": {"limit": "1TB"}, "priority_support": true, "sso": true}),
        ),
        plan(
            "pro_annual",
            "Pro Annual",
            "Pro, billed yearly",
            Decimal::new(99900, 2),
            BillingCycle::Yearly,
            json!({"api_calls": {"limit": 100000}, "storage": {"limit": "100GB"}, "priority_support": true}),
        ),
    ];
    let mut added = 0;
    conn.transaction::<_, ServiceError, _>(async move |conn| {
        {
            for p in &catalog {
                if db::plans::insert_if_absent(conn, p).await?.is_some() {
                    added += 1;
                }
            }
            // The trial converts to Basic.
            let plans = db::plans::all(conn).await?;
            let id_of = |code: &str| plans.iter().find(|p| p.code == code).map(|p| p.id);
            if let (Some(trial), Some(basic)) = (id_of("basic_trial"), id_of("basic"))
                && plans.iter().any(|p| p.id == trial && p.converts_to_plan_id.is_none())
            {
                let link = PlanChanges { converts_to_plan_id: Some(Some(basic)), ..PlanChanges::default() };
                db::plans::update(conn, trial, &link).await?;
            }
            Ok(added)
        }
    })
    .await
}

/// Creates an admin with `password`, or makes an existing account an admin. Returns true when created.
pub async fn ensure_admin(
    conn: &mut diesel_async::AsyncPgConnection,
    email: &str,
    password: &str,
) -> Result<bool, ServiceError> {
    let email = crate::services::auth::normalize_email(email).map_err(|e| ServiceError::invalid("email", e))?;
    if let Some(existing) = db::users::find_by_email(conn, &email).await? {
        db::users::promote_to_admin(conn, existing.id).await?;
        return Ok(false);
    }
    billing_auth::check_policy(password).map_err(|e| ServiceError::invalid("password", e.to_string()))?;
    let hash = billing_auth::hash_password(password.to_owned()).await.map_err(ServiceError::internal)?;
    let user = NewUser {
        id: UserId::new(),
        email: &email,
        password_hash: &hash,
        first_name: Some("Admin"),
        last_name: None,
        role: Role::Admin.as_str(),
    };
    db::users::insert(conn, &user).await?;
    Ok(true)
}
