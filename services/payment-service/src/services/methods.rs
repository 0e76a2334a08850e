//! Saved payment methods: a card is handed to the gateway once and only its token, brand, last 4 and expiry are
//! kept. The newest saved method is the user's default, the one renewals and trial conversions charge.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::schema::payment_methods;
use crate::error::ServiceError;
use crate::gateway::{CardDetails, SavedCard};
use crate::state::AppState;

/// A saved method as its owner sees it (the gateway token stays inside this service).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payment_methods, check_for_backend(diesel::pg::Pg))]
pub struct MethodRow {
    pub id: Uuid,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cardholder_name: String,
    pub created_at: DateTime<Utc>,
}

/// Saves `card` for `user` without charging it; it becomes their default.
pub async fn save(state: &AppState, user: Uuid, card: CardDetails) -> Result<MethodRow, ServiceError> {
    let holder = card.cardholder_name.clone();
    let saved = state.gateway.save_card(card).await.map_err(|e| ServiceError::GatewayUnavailable(e.to_string()))?;
    let mut conn = state.conn().await?;
    let id = insert(&mut conn, user, &saved, &holder).await?;
    Ok(payment_methods::table.find(id).select(MethodRow::as_select()).first(&mut conn).await?)
}

/// Stores a card the gateway saved (once per gateway token); its id.
pub async fn insert(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
    saved: &SavedCard,
    holder: &str,
) -> Result<Uuid, ServiceError> {
    diesel::insert_into(payment_methods::table)
        .values((
            payment_methods::id.eq(Uuid::now_v7()),
            payment_methods::user_id.eq(user),
            payment_methods::gateway_token.eq(&saved.token),
            payment_methods::brand.eq(&saved.brand),
            payment_methods::last4.eq(&saved.last4),
            payment_methods::exp_month.eq(i32::try_from(saved.exp_month).unwrap_or(1)),
            payment_methods::exp_year.eq(i32::try_from(saved.exp_year).unwrap_or(2000)),
            payment_methods::cardholder_name.eq(holder),
        ))
        .on_conflict(payment_methods::gateway_token)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(payment_methods::table
        .filter(payment_methods::gateway_token.eq(&saved.token))
        .select(payment_methods::id)
        .first::<Uuid>(conn)
        .await?)
}

/// The user's saved methods, the default (newest) first.
pub async fn list(state: &AppState, user: Uuid) -> Result<Vec<MethodRow>, ServiceError> {
    Ok(payment_methods::table
        .filter(payment_methods::user_id.eq(user))
        .order((payment_methods::created_at.desc(), payment_methods::id.desc()))
        .select(MethodRow::as_select())
        .load(&mut *state.conn().await?)
        .await?)
}

/// The user's default method: the newest one.
pub async fn default_for(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
) -> Result<Option<MethodRow>, ServiceError> {
    Ok(payment_methods::table
        .filter(payment_methods::user_id.eq(user))
        .order((payment_methods::created_at.desc(), payment_methods::id.desc()))
        .select(MethodRow::as_select())
        .first(conn)
        .await
        .optional()?)
}
