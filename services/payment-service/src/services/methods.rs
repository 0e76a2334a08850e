//! Saved payment methods: a card is handed to the gateway once and only its token, brand, last 4 and expiry are
//! kept. The user's default is the one renewals and trial conversions charge: the one they chose, else the newest;
//! a newly saved card becomes the default. A deleted method is kept for the history of the payments that used it,
//! and never charged again.

use billing_domain::{PaymentMethodId, UserId};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::clients::gateway::{CardDetails, SavedCard};
use crate::db;
pub use crate::db::models::MethodRow;
use crate::db::models::NewMethod;
use crate::error::ServiceError;
use crate::state::AppState;

/// Saves `card` for `user` without charging it; it becomes their default.
pub async fn save(state: &AppState, user: UserId, card: CardDetails) -> Result<MethodRow, ServiceError> {
    let saved = state.gateway.save_card(card).await.map_err(|e| ServiceError::GatewayUnavailable(e.to_string()))?;
    let mut conn = state.conn().await?;
    let id = insert(&mut conn, user, &saved).await?;
    db::methods::find(&mut conn, id).await?.ok_or_else(|| ServiceError::Internal("a saved card vanished".into()))
}

/// Stores a card the gateway saved (once per gateway token) and makes it the user's default; its id.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    user: UserId,
    saved: &SavedCard,
) -> Result<PaymentMethodId, ServiceError> {
    let row = NewMethod {
        id: PaymentMethodId::new(),
        user_id: user,
        gateway_token: &saved.token,
        brand: &saved.brand,
        last4: &saved.last4,
        exp_month: i32::try_from(saved.exp_month).unwrap_or(1),
        exp_year: i32::try_from(saved.exp_year).unwrap_or(2000),
        cardholder_name: &saved.cardholder_name,
        // Made the default just below, once the others are not.
        is_default: false,
    };
    let id = db::methods::insert_once(conn, &row).await?;
    db::methods::make_default(conn, user, id).await?;
    Ok(id)
}

/// The user's live method `id`, or 404 (another user's does not exist for them).
async fn owned(conn: &mut AsyncPgConnection, user: UserId, id: PaymentMethodId) -> Result<MethodRow, ServiceError> {
    db::methods::live_of(conn, user, id).await?.ok_or(ServiceError::PaymentMethodNotFound)
}

/// `id` when it is a live method of `user`.
pub async fn live(
    conn: &mut AsyncPgConnection,
    user: UserId,
    id: PaymentMethodId,
) -> Result<Option<PaymentMethodId>, ServiceError> {
    Ok(db::methods::live_of(conn, user, id).await?.map(|row| row.id))
}

/// Makes the user's method `id` their default.
pub async fn make_default(state: &AppState, user: UserId, id: PaymentMethodId) -> Result<MethodRow, ServiceError> {
    state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            owned(conn, user, id).await?;
            db::methods::make_default(conn, user, id).await?;
            owned(conn, user, id).await
        })
        .await
}

/// Deletes the user's method `id`: it is never charged again; if it was the default, the newest left takes over.
pub async fn delete(state: &AppState, user: UserId, id: PaymentMethodId) -> Result<(), ServiceError> {
    let now = state.now();
    let mut conn = state.conn().await?;
    owned(&mut conn, user, id).await?;
    Ok(db::methods::mark_deleted(&mut conn, id, now).await?)
}

/// The user's live saved methods, the default first, then the newest.
pub async fn list(state: &AppState, user: UserId) -> Result<Vec<MethodRow>, ServiceError> {
    Ok(db::methods::list_live(&mut *state.conn().await?, user).await?)
}

/// The user's default method: the one they chose, else the newest live one.
pub async fn default_for(conn: &mut AsyncPgConnection, user: UserId) -> Result<Option<MethodRow>, ServiceError> {
    Ok(db::methods::default_of(conn, user).await?)
}
