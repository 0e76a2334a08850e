//! Paying an invoice: what is due is asked from the subscription service and enforced, the gateway charges once
//! per gateway key, and the transaction, the saved card and the outbox event commit together.

use billing_contract::{PaymentEvent, PaymentEventDetail};
use billing_domain::{AmountText, Currency, Money};
use billing_domain::{InvoiceId, PaymentMethodId, SubscriptionId, TransactionId, UserId};
use billing_queue::{NewJob, Payload, QueueName, outbox};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::Serialize;

use crate::clients::gateway::{CardDetails, ChargeOutcome, ChargeRequest, GatewayError, PaymentSource, SavedCard};
use crate::db;
use crate::db::TransactionStatus;
use crate::db::models::NewTransaction;
pub use crate::db::models::TransactionRow;
use crate::error::ServiceError;
use crate::state::AppState;

/// What pays: a card typed now, or a saved payment method of the user.
#[derive(Debug, Clone)]
pub enum Funding {
    Card {
        card: CardDetails,
        save: bool,
    },
    /// Our payment method id (its gateway token stays inside this service).
    Saved(PaymentMethodId),
}

/// What the caller asked to pay.
#[derive(Debug)]
pub struct PayRequest {
    pub user: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub invoice_id: Option<InvoiceId>,
    pub amount: AmountText,
    pub currency: String,
    pub funding: Funding,
    /// Charges made for the same key reach the gateway once.
    pub gateway_key: String,
    pub request_id: String,
    /// A charge the subscription service makes without the customer present (renewal, dunning retry, trial
    /// conversion, proration): it is charged as issued even below the currency's minimum for customer payments,
    /// and its events say so, because only these outcomes drive dunning.
    pub off_session: bool,
}

/// A successful payment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Paid {
    #[schema(value_type = uuid::Uuid)]
    pub transaction_id: TransactionId,
    #[schema(example = "success")]
    pub status: &'static str,
    pub amount: String,
    pub currency: String,
    pub gateway_reference: String,
    pub card: CardSummary,
}

/// The card, as much as is ever kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

/// How many times an ambiguous gateway answer (timeout) is retried with the same key.
const AMBIGUOUS_RETRIES: usize = 3;

/// Pays an invoice (named directly, or the subscription's open one) with a card.
pub async fn pay(state: &AppState, request: PayRequest) -> Result<Paid, ServiceError> {
    let currency = Currency::from_client_code(&request.currency)
        .ok_or_else(|| ServiceError::invalid("currency", "unsupported currency"))?;
    let amount = request.amount.to_money(currency).map_err(|e| ServiceError::invalid("amount", e.to_string()))?;
    if !request.off_session && amount.minor() < currency.min_charge().minor() {
        return Err(ServiceError::invalid(
            "amount",
            format!("at least {} for {}", currency.min_charge().amount_string(), currency.code()),
        ));
    }
    let due = match (request.invoice_id, request.subscription_id) {
        (Some(invoice), _) => {
            state.subscriptions.invoice(invoice, &request.request_id).await?.ok_or(ServiceError::InvoiceNotFound)?
        }
        (None, Some(sub)) => state
            .subscriptions
            .subscription_due(sub, &request.request_id)
            .await?
            .ok_or(ServiceError::SubscriptionNotFound)?,
        (None, None) => return Err(ServiceError::invalid("subscription_id", "give subscription_id or invoice_id")),
    };
    // Another user's invoice or subscription does not exist, as far as this caller can tell.
    if due.user_id != request.user || request.subscription_id.is_some_and(|s| due.subscription_id != Some(s)) {
        return Err(if request.invoice_id.is_some() {
            ServiceError::InvoiceNotFound
        } else {
            ServiceError::SubscriptionNotFound
        });
    }
    if !due.payable {
        return Err(ServiceError::InvoiceNotPayable(format!("the invoice is {}", due.status)));
    }
    let due_currency = Currency::from_code(&due.currency)
        .ok_or_else(|| ServiceError::Internal("bad currency from the subscription service".into()))?;
    let due_amount = Money::parse(&due.amount_due, due_currency).map_err(|e| ServiceError::Internal(e.to_string()))?;
    if due_amount != amount {
        return Err(ServiceError::AmountMismatch {
            due: due_amount.amount_string(),
            currency: due_currency.code().to_owned(),
        });
    }

    // What the gateway charges, and the card as much as is ever kept.
    let mut conn = state.conn().await?;
    let (source, save_card, brand, last4, saved_method) = match &request.funding {
        Funding::Card { card, save } => {
            (PaymentSource::Card(card.clone()), *save, card.brand().to_owned(), card.last4(), None)
        }
        Funding::Saved(id) => {
            let method = db::methods::chargeable(&mut conn, *id)
                .await?
                .filter(|m| m.user_id == request.user)
                .ok_or_else(|| ServiceError::invalid("payment_method_id", "no such payment method"))?;
            let last4 = method.last4.trim().to_owned();
            (PaymentSource::Token(method.gateway_token), false, method.brand, last4, Some(*id))
        }
    };
    // The pending row first: if this process dies after charging, the row and the gateway key resolve it. The
    // row is the invoice's one live charge (a unique index): another key finds the invoice taken.
    let transaction_id = start_attempt(&mut conn, &request, &due, amount, (&brand, &last4), save_card).await?;
    drop(conn);

    let charge = ChargeRequest { idempotency_key: request.gateway_key.clone(), amount, source, save_card };
    let mut outcome = state.gateway.charge(charge.clone()).await;
    for _ in 0..AMBIGUOUS_RETRIES {
        if outcome != Err(GatewayError::Timeout) {
            break;
        }
        // The charge may have happened: asking again with the same key returns its outcome, never a second charge.
        outcome = state.gateway.charge(charge.clone()).await;
    }
    let now = state.now();
    let facts = Attempt {
        transaction_id,
        subscription_id: due.subscription_id,
        invoice_id: due.invoice_id,
        amount,
        off_session: request.off_session,
    };
    match outcome {
        Ok(ChargeOutcome::Succeeded { reference, card }) => {
            let mut conn = state.conn().await?;
            let user = request.user;
            let reference_for_tx = reference.clone();
            let pushed = conn
                .transaction::<_, ServiceError, _>(async move |conn| {
                    // The attempt's row first, as `settle_pending` takes it: the gateway's event for this very
                    // charge may be settling it now, and the two taking the row and the card in opposite orders
                    // deadlocked. Settled already: the event said it all. Without a card to keep, the settling
                    // update itself takes the row and checks it is pending.
                    let keep = card.filter(|_| saved_method.is_none());
                    if keep.is_some() && !lock_pending(conn, transaction_id).await? {
                        return Ok(None);
                    }
                    let mut method_id = saved_method;
                    if let Some(saved) = keep {
                        method_id = Some(crate::services::methods::insert(conn, user, &saved).await?);
                    }
                    if !db::transactions::mark_succeeded(conn, transaction_id, &reference_for_tx, method_id).await? {
                        return Ok(None);
                    }
                    let settled = Settled::Succeeded { reference: &reference_for_tx, payment_method_id: method_id };
                    let job = payment_event(&facts, &settled, now);
                    let row = outbox::push(conn, QueueName::PaySubscriptionUpdate.as_str(), &job, None).await?;
                    Ok(Some((row, job)))
                })
                .await?;
            if let Some((row, job)) = pushed {
                send_webhook_now(state, row, job);
            }
            tracing::info!(transaction_id = %transaction_id, invoice_id = %due.invoice_id, "payment succeeded");
            Ok(Paid {
                transaction_id,
                status: TransactionStatus::Succeeded.api_word(),
                amount: amount.amount_string(),
                currency: currency.code().to_owned(),
                gateway_reference: reference,
                card: CardSummary { brand, last4 },
            })
        }
        Ok(ChargeOutcome::Declined { reference, code, message, retryable }) => {
            let mut conn = state.conn().await?;
            let code_for_tx = code.clone();
            let pushed = conn
                .transaction::<_, ServiceError, _>(async move |conn| {
                    if !db::transactions::mark_failed(conn, transaction_id, &reference, &code_for_tx).await? {
                        return Ok(None);
                    }
                    let job = payment_event(&facts, &Settled::Declined { code: &code_for_tx, retryable }, now);
                    let row = outbox::push(conn, QueueName::PaySubscriptionUpdate.as_str(), &job, None).await?;
                    Ok(Some((row, job)))
                })
                .await?;
            if let Some((row, job)) = pushed {
                send_webhook_now(state, row, job);
            }
            tracing::info!(transaction_id = %transaction_id, decline_code = %code, "payment declined");
            Err(ServiceError::Declined { transaction_id, decline_code: code, message, retryable })
        }
        Err(GatewayError::Timeout) => {
            // The outcome is still unknown: the row stays pending (the invoice stays taken) until a retry with the
            // same key learns it from the gateway.
            Err(ServiceError::GatewayUnavailable(GatewayError::Timeout.to_string()))
        }
        Err(err) => {
            // Nothing was charged: the attempt is failed so the invoice is free for another one.
            close_uncharged(state, transaction_id).await?;
            Err(ServiceError::GatewayUnavailable(err.to_string()))
        }
    }
}

/// Closes a pending attempt the gateway never charged as failed (`gateway_unavailable`), freeing its invoice for
/// another payment; how many rows it closed (0 when settled meanwhile).
async fn close_uncharged(state: &AppState, transaction_id: TransactionId) -> Result<usize, ServiceError> {
    Ok(db::transactions::fail_if_pending(&mut *state.conn().await?, transaction_id, "gateway_unavailable").await?)
}

/// Locks the attempt's row; whether it is still pending (not settled meanwhile by the gateway's event or the
/// reconciler).
async fn lock_pending(conn: &mut AsyncPgConnection, transaction_id: TransactionId) -> Result<bool, ServiceError> {
    Ok(db::transactions::lock_status(conn, transaction_id).await? == Some(TransactionStatus::Pending))
}

/// The card of a pending attempt whose customer asked to keep it, from the gateway (a gateway event does not carry
/// it): asked before the settling transaction, so no row lock is held across the call. Without an answer the
/// payment still settles; only the card is not kept.
async fn card_to_keep(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    transaction_id: TransactionId,
) -> Result<Option<SavedCard>, ServiceError> {
    let wanted = db::transactions::find(conn, transaction_id)
        .await?
        .filter(|t| t.status == TransactionStatus::Pending && t.save_card && t.payment_method_id.is_none());
    let Some(attempt) = wanted else { return Ok(None) };
    match state.gateway.find_charge(attempt.idempotency_key).await {
        Ok(Some(ChargeOutcome::Succeeded { card, .. })) => Ok(card),
        Ok(_) => Ok(None),
        Err(err) => {
            tracing::warn!(transaction_id = %transaction_id, error = %err, "the card of a settled payment is not kept");
            Ok(None)
        }
    }
}

/// What the payment event of an attempt says about it, whoever settles it.
struct Attempt {
    transaction_id: TransactionId,
    subscription_id: Option<SubscriptionId>,
    invoice_id: InvoiceId,
    amount: Money,
    off_session: bool,
}

/// How an attempt ended.
enum Settled<'a> {
    Succeeded { reference: &'a str, payment_method_id: Option<PaymentMethodId> },
    Declined { code: &'a str, retryable: bool },
}

/// The `payment.succeeded` or `payment.failed` event of an attempt, for the subscription service (one event id per
/// transaction, so it applies once however many times it is sent).
fn payment_event(attempt: &Attempt, settled: &Settled<'_>, now: DateTime<Utc>) -> NewJob {
    use billing_contract::events::{PaymentFailed, PaymentSucceeded};
    let id = attempt.transaction_id;
    let detail = match settled {
        Settled::Succeeded { reference, payment_method_id } => PaymentEventDetail::PaymentSucceeded(PaymentSucceeded {
            payment_method_id: payment_method_id.map(|id| id.to_string()),
            gateway_reference: (*reference).to_owned(),
            off_session: attempt.off_session,
        }),
        Settled::Declined { code, retryable } => PaymentEventDetail::PaymentFailed(PaymentFailed {
            decline_code: (*code).to_owned(),
            retryable: Some(*retryable),
            off_session: attempt.off_session,
        }),
    };
    let event = PaymentEvent {
        event_id: format!("evt_{id}"),
        transaction_id: id,
        subscription_id: attempt.subscription_id,
        invoice_id: attempt.invoice_id,
        amount: attempt.amount.amount_string(),
        currency: attempt.amount.currency().code().to_owned(),
        occurred_at: now,
        detail,
    };
    event_job(&event).correlated(id.to_string())
}

/// `q:pay:subscription_update`: a payment event to deliver to the subscription service, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventDelivery(pub PaymentEvent);

impl Payload for EventDelivery {
    const QUEUE: QueueName = QueueName::PaySubscriptionUpdate;
    const ACTION: &'static str = "payment_event";

    /// The event's type (`payment.succeeded` …), so the queue's lists say what each job is.
    fn action(&self) -> String {
        self.0.event_type().to_owned()
    }
}

/// The outbox job that delivers `event` (one job key per event id).
pub fn event_job(event: &PaymentEvent) -> NewJob {
    EventDelivery(event.clone()).job(format!("webhook:{}", event.event_id))
}

/// Settles an attempt left `pending` (its answer was lost: a timeout, a crash) with what the gateway says now, from
/// its event or the reconciler's question, and announces it like any payment. Returns false when the attempt is
/// no longer pending (settled already, by whichever came first).
pub async fn settle_pending(
    state: &AppState,
    transaction_id: TransactionId,
    mut outcome: ChargeOutcome,
) -> Result<bool, ServiceError> {
    let now = state.now();
    let mut conn = state.conn().await?;
    if let ChargeOutcome::Succeeded { card: card @ None, .. } = &mut outcome {
        *card = card_to_keep(state, &mut conn, transaction_id).await?;
    }
    let pushed = conn
        .transaction::<_, ServiceError, _>(async move |conn| {
            let Some(row) = db::transactions::find_for_update(conn, transaction_id)
                .await?
                .filter(|t| t.status == TransactionStatus::Pending)
            else {
                return Ok(None);
            };
            let amount =
                Money::from_decimal(row.amount, row.currency).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let attempt = Attempt {
                transaction_id,
                subscription_id: row.subscription_id,
                invoice_id: row.invoice_id,
                amount,
                off_session: row.off_session,
            };
            let job = match &outcome {
                ChargeOutcome::Succeeded { reference, card } => {
                    let mut method_id = row.payment_method_id;
                    if let Some(card) = card.as_ref().filter(|_| row.save_card && method_id.is_none()) {
                        method_id = Some(crate::services::methods::insert(conn, row.user_id, card).await?);
                    }
                    db::transactions::mark_succeeded(conn, transaction_id, reference, method_id).await?;
                    payment_event(&attempt, &Settled::Succeeded { reference, payment_method_id: method_id }, now)
                }
                ChargeOutcome::Declined { reference, code, retryable, .. } => {
                    db::transactions::mark_failed(conn, transaction_id, reference, code).await?;
                    payment_event(&attempt, &Settled::Declined { code, retryable: *retryable }, now)
                }
            };
            let row = outbox::push(conn, QueueName::PaySubscriptionUpdate.as_str(), &job, None).await?;
            Ok(Some((row, job)))
        })
        .await?;
    match pushed {
        Some((row, job)) => {
            send_webhook_now(state, row, job);
            tracing::warn!(transaction_id = %transaction_id, "a pending payment was settled after the fact");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Attempts left `pending` for longer than `older_than` (their answer was lost) are settled with what the gateway
/// knows of them, asked by their idempotency key; one the gateway never saw failed before charging, and is
/// closed so its invoice can be paid again. Returns how many were settled.
pub async fn reconcile_pending(state: &AppState, older_than: chrono::Duration) -> Result<usize, ServiceError> {
    let cutoff = state.now() - older_than;
    let stale = db::transactions::stale_pending(&mut *state.conn().await?, cutoff, 100).await?;
    let mut settled = 0;
    for (id, key) in stale {
        match state.gateway.find_charge(key).await {
            Ok(Some(outcome)) => settled += usize::from(settle_pending(state, id, outcome).await?),
            Ok(None) => {
                settled += close_uncharged(state, id).await?;
            }
            Err(err) => {
                tracing::warn!(transaction_id = %id, error = %err, "could not ask the gateway about a pending payment")
            }
        }
    }
    Ok(settled)
}

/// Records the attempt as the invoice's live charge: a new pending row, or the row of an earlier call with the same
/// gateway key (a failed one is tried again). 409 when another key's charge of the invoice is pending or succeeded.
async fn start_attempt(
    conn: &mut AsyncPgConnection,
    request: &PayRequest,
    due: &crate::clients::subscriptions::InvoiceDue,
    amount: Money,
    (brand, last4): (&str, &str),
    save_card: bool,
) -> Result<TransactionId, ServiceError> {
    let taken = |e: billing_infra::DbError| match e {
        billing_infra::DbError::UniqueViolation { constraint } if constraint == "transactions_one_live_per_invoice" => {
            ServiceError::InvoiceNotPayable("another payment of this invoice is in progress or has succeeded".into())
        }
        other => other.into(),
    };
    let id = TransactionId::new();
    let row = NewTransaction {
        id,
        user_id: request.user,
        subscription_id: due.subscription_id,
        invoice_id: due.invoice_id,
        amount: amount.to_decimal(),
        currency: amount.currency(),
        status: TransactionStatus::Pending,
        off_session: request.off_session,
        idempotency_key: &request.gateway_key,
        card_brand: brand,
        card_last4: last4,
        save_card,
    };
    if db::transactions::insert_new_key(conn, &row).await.map_err(taken)? {
        return Ok(id);
    }
    // An earlier call with this key made the row: its attempt is this one (a failed one is tried again).
    let (id, status) = db::transactions::find_by_key(conn, &request.gateway_key)
        .await?
        .ok_or_else(|| ServiceError::Internal("the attempt of a known gateway key vanished".into()))?;
    if status == TransactionStatus::Failed {
        db::transactions::reopen(conn, id).await.map_err(taken)?;
    }
    Ok(id)
}

/// Pushes a committed webhook job now, in the background (the outbox relay remains the guarantee).
fn send_webhook_now(state: &AppState, row: i64, job: NewJob) {
    let (pool, queue) = (
        state.infra.db.clone(),
        billing_queue::Queue::new(state.infra.redis.clone(), QueueName::PaySubscriptionUpdate),
    );
    tokio::spawn(async move { outbox::send_now(&pool, &queue, row, job).await });
}

/// One of the caller's transactions (or any, for an admin).
pub async fn get(
    state: &AppState,
    user: UserId,
    admin: bool,
    id: TransactionId,
) -> Result<TransactionRow, ServiceError> {
    let row = db::transactions::find(&mut *state.conn().await?, id).await?.ok_or(ServiceError::PaymentNotFound)?;
    if row.user_id != user && !admin {
        return Err(ServiceError::PaymentNotFound);
    }
    Ok(row)
}

/// The caller's transactions, newest first, `limit` at a time after `cursor` (`<created_at µs>_<id>`).
pub async fn history(
    state: &AppState,
    user: UserId,
    limit: i64,
    cursor: Option<(DateTime<Utc>, TransactionId)>,
) -> Result<Vec<TransactionRow>, ServiceError> {
    Ok(db::transactions::history(&mut *state.conn().await?, user, limit, cursor).await?)
}
