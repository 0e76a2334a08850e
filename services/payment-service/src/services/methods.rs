//! Saved payment methods: a card is handed to the gateway once and only its token, brand, last 4 and expiry are
//! kept. The user's default is the one renewals and trial conversions charge: the one they chose, else the newest;
//! a newly saved card becomes the default. A deleted method is kept for the history of the payments that used it,
//! and never charged again.

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
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

/// Saves `card` for `user` without charging it; it becomes their default.
pub async fn save(state: &AppState, user: Uuid, card: CardDetails) -> Result<MethodRow, ServiceError> {
    let saved = state.gateway.save_card(card).await.map_err(|e| ServiceError::GatewayUnavailable(e.to_string()))?;
    let mut conn = state.conn().await?;
    let id = insert(&mut conn, user, &saved).await?;
    Ok(payment_methods::table.find(id).select(MethodRow::as_select()).first(&mut conn).await?)
}

/// Stores a card the gateway saved (once per gateway token); its id.
pub async fn insert(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
    saved: &SavedCard,
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
            payment_methods::cardholder_name.eq(&saved.cardholder_name),
            // Made the default just below, once the others are not.
            payment_methods::is_default.eq(false),
        ))
        .on_conflict(payment_methods::gateway_token)
        .do_nothing()
        .execute(conn)
        .await?;
    let id = payment_methods::table
        .filter(payment_methods::gateway_token.eq(&saved.token))
        .select(payment_methods::id)
        .first::<Uuid>(conn)
        .await?;
    make_default_in(conn, user, id).await?;
    Ok(id)
}

/// Makes `id` the user's only default, in the caller's transaction.
async fn make_default_in(conn: &mut diesel_async::AsyncPgConnection, user: Uuid, id: Uuid) -> Result<(), ServiceError> {
    diesel::update(
        payment_methods::table.filter(payment_methods::user_id.eq(user)).filter(payment_methods::is_default),
    )
    .set(payment_methods::is_default.eq(false))
    .execute(conn)
    .await?;
    diesel::update(payment_methods::table.find(id)).set(payment_methods::is_default.eq(true)).execute(conn).await?;
    Ok(())
}

/// The user's live method `id`, or 404 (another user's does not exist for them).
async fn owned(conn: &mut diesel_async::AsyncPgConnection, user: Uuid, id: Uuid) -> Result<MethodRow, ServiceError> {
    payment_methods::table
        .find(id)
        .filter(payment_methods::user_id.eq(user))
        .filter(payment_methods::deleted_at.is_null())
        .select(MethodRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(ServiceError::PaymentMethodNotFound)
}

/// `id` when it is a live method of `user`.
pub async fn live(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
    id: Uuid,
) -> Result<Option<Uuid>, ServiceError> {
    match owned(conn, user, id).await {
        Ok(row) => Ok(Some(row.id)),
        Err(ServiceError::PaymentMethodNotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Makes the user's method `id` their default.
pub async fn make_default(state: &AppState, user: Uuid, id: Uuid) -> Result<MethodRow, ServiceError> {
    use diesel_async::AsyncConnection;
    state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            owned(conn, user, id).await?;
            make_default_in(conn, user, id).await?;
            owned(conn, user, id).await
        })
        .await
}

/// Deletes the user's method `id`: it is never charged again; if it was the default, the newest left takes over.
pub async fn delete(state: &AppState, user: Uuid, id: Uuid) -> Result<(), ServiceError> {
    let now = state.now();
    let mut conn = state.conn().await?;
    owned(&mut conn, user, id).await?;
    diesel::update(payment_methods::table.find(id))
        .set((payment_methods::deleted_at.eq(now), payment_methods::is_default.eq(false)))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The user's live saved methods, the default first, then the newest.
pub async fn list(state: &AppState, user: Uuid) -> Result<Vec<MethodRow>, ServiceError> {
    Ok(payment_methods::table
        .filter(payment_methods::user_id.eq(user))
        .filter(payment_methods::deleted_at.is_null())
        .order((payment_methods::is_default.desc(), payment_methods::created_at.desc(), payment_methods::id.desc()))
        .select(MethodRow::as_select())
        .load(&mut *state.conn().await?)
        .await?)
}

/// The user's default method: the one they chose, else the newest live one.
pub async fn default_for(
    conn: &mut diesel_async::AsyncPgConnection,
    user: Uuid,
) -> Result<Option<MethodRow>, ServiceError> {
    Ok(payment_methods::table
        .filter(payment_methods::user_id.eq(user))
        .filter(payment_methods::deleted_at.is_null())
        .order((payment_methods::is_default.desc(), payment_methods::created_at.desc(), payment_methods::id.desc()))
        .select(MethodRow::as_select())
        .first(conn)
        .await
        .optional()?)
}
