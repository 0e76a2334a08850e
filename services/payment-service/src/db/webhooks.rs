//! Webhook deliveries we made (`webhook_deliveries`) and gateway events we received (`gateway_events`).

use billing_domain::TransactionId;
use billing_infra::CachedDsl;
use billing_infra::DbError;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::models::{DeliveryRow, NewDelivery};
use super::schema::{gateway_events as g, webhook_deliveries as d};

pub async fn record_delivery(conn: &mut AsyncPgConnection, row: &NewDelivery<'_>) -> Result<(), DbError> {
    diesel::insert_into(d::table).values(row).cached().execute(conn).await?;
    Ok(())
}

/// The latest `limit` delivery attempts, newest first.
pub async fn recent_deliveries(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<DeliveryRow>, DbError> {
    Ok(d::table.order(d::id.desc()).limit(limit).select(DeliveryRow::as_select()).load(conn).await?)
}

/// The event id and the event a delivery sent.
pub async fn delivered_event(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<(String, Value)>, DbError> {
    Ok(d::table.find(id).select((d::event_id, d::payload)).first(conn).await.optional()?)
}

/// Records a gateway event; false when its id was recorded before (a duplicate).
pub async fn record_gateway_event(
    conn: &mut AsyncPgConnection,
    event_id: &str,
    event_type: &str,
    payload: &Value,
) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(g::table)
        .values((g::event_id.eq(event_id), g::event_type.eq(event_type), g::payload.eq(payload)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// A gateway event about a charge, recorded once per event id, and the attempt still pending here that it can
/// settle (matched by the gateway's reference or by our gateway key), in one statement: most such events confirm a
/// charge this service settled already, and cost one round trip.
#[derive(Debug, QueryableByName)]
pub struct RecordedChargeEvent {
    /// False when its id was recorded before (a duplicate).
    #[diesel(sql_type = Bool)]
    pub recorded: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::Uuid>)]
    pub pending: Option<TransactionId>,
}

pub async fn record_charge_event(
    conn: &mut AsyncPgConnection,
    (event_id, event_type, payload): (&str, &str, &Value),
    reference: &str,
    key: &str,
) -> Result<RecordedChargeEvent, DbError> {
    const SQL: &str = "WITH recorded AS (
            INSERT INTO gateway_events (event_id, event_type, payload) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING RETURNING event_id)
        SELECT EXISTS (SELECT 1 FROM recorded) AS recorded,
            (SELECT id FROM transactions WHERE status = 'pending' AND (gateway_reference = $4 OR idempotency_key = $5)
             LIMIT 1) AS pending";
    Ok(diesel::sql_query(SQL)
        .bind::<Text, _>(event_id)
        .bind::<Text, _>(event_type)
        .bind::<Jsonb, _>(payload)
        .bind::<Text, _>(reference)
        .bind::<Text, _>(key)
        .cached()
        .get_result(conn)
        .await?)
}
