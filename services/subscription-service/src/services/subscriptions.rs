//! Subscriptions: create (paid or trial), read, change plan or seats, cancel, reactivate. Every transition goes
//! through the domain state machine, bumps the row version (a concurrent change gets 409) and appends one
//! `subscription_events` row in the same transaction.

use billing_domain::plan_change::{self, Seats, Upgrade};
use billing_domain::proration::Proration;
use billing_domain::{HistoryEntry, InvoiceKind, Money, SubscriptionEvent, SubscriptionStatus};
use billing_domain::{InvoiceId, SubscriptionId, UserId};
use billing_http::AuthUser;
use billing_queue::{Payload, Queue, QueueName, outbox};
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use diesel_async::AsyncPgConnection;
use serde_json::{Value, json};

use crate::db;
use crate::db::models::{InvoiceRow, NewSubscription, NewSubscriptionEvent, SubscriptionChanges};
pub use crate::db::models::{SubscriptionEventRow, SubscriptionRow};
use crate::error::ServiceError;
use crate::services::billing;
use crate::services::invoices::{self, InvoiceDraft};
use crate::services::plans::{self, Plan};
use crate::state::AppState;
use billing_domain::invoice::Line;

/// How long a pending subscription waits for its first payment.
pub const PENDING_TTL: Duration = Duration::hours(24);
/// The most seats a subscription may have.
pub const MAX_QUANTITY: i32 = 10_000;

/// A newly created paid subscription and the invoice to pay.
#[derive(Debug, Clone)]
pub struct Created {
    pub subscription: SubscriptionRow,
    pub plan: Plan,
    pub invoice: InvoiceRow,
}

/// The outcome of a plan or seat change.
#[derive(Debug, Clone)]
pub struct Changed {
    pub subscription: SubscriptionRow,
    /// Set for an upgrade applied now.
    pub proration: Option<Proration>,
    /// The proration invoice, charged now; `None` when the proration was carried to the next invoice.
    pub invoice: Option<InvoiceRow>,
    /// True when the change waits for the period end (a downgrade).
    pub scheduled: bool,
    /// True when the proration's net (with earlier carried lines) is below the currency's minimum charge, so its
    /// lines wait for the subscription's next invoice instead of being charged alone.
    pub carried: bool,
    /// A preview: the invoice the change would issue now (an upgrade's proration), or the next renewal as it would
    /// then be; nothing was written and `subscription` is what it would become.
    pub preview: Option<Option<InvoiceDraft>>,
}

fn check_quantity(quantity: i32) -> Result<(), ServiceError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(ServiceError::invalid("quantity", format!("must be from 1 to {MAX_QUANTITY}")))
    }
}

fn seat_total(plan: &Plan, quantity: i32) -> Result<Money, ServiceError> {
    let too_large = || ServiceError::invalid("quantity", "the total is too large");
    plan.pricing().total(u32::try_from(quantity).map_err(|_| too_large())?).map_err(|_| too_large())
}

/// Applies `event` to `row`: the state machine decides the new status; the update only lands if nobody changed
/// the row since it was read; the event is logged in the same transaction.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    row: &SubscriptionRow,
    event: SubscriptionEvent,
    entry: HistoryEntry,
    mut changes: SubscriptionChanges,
    data: Value,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let from = row.status;
    let to = from.apply(event)?;
    changes.status = Some(to);
    let updated = db::subscriptions::update_versioned(conn, row.id, row.version, &changes)
        .await?
        .ok_or(ServiceError::ConcurrentUpdate)?;
    db::subscriptions::insert_event(
        conn,
        &NewSubscriptionEvent {
            subscription_id: row.id,
            event_type: entry,
            from_status: Some(from),
            to_status: to,
            data,
            occurred_at: now,
        },
    )
    .await?;
    Ok(updated)
}

/// Appends an event that is not a status change (creation, a recorded payment attempt …).
pub async fn log_event(
    conn: &mut AsyncPgConnection,
    id: SubscriptionId,
    entry: HistoryEntry,
    from: Option<SubscriptionStatus>,
    to: SubscriptionStatus,
    data: Value,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    db::subscriptions::insert_event(
        conn,
        &NewSubscriptionEvent {
            subscription_id: id,
            event_type: entry,
            from_status: from,
            to_status: to,
            data,
            occurred_at: now,
        },
    )
    .await?;
    Ok(())
}

fn map_insert_error(err: billing_infra::DbError) -> ServiceError {
    match err {
        billing_infra::DbError::UniqueViolation { constraint } if constraint == "subscriptions_one_trial_per_user" => {
            ServiceError::TrialAlreadyUsed
        }
        billing_infra::DbError::UniqueViolation { .. } => ServiceError::AlreadySubscribed,
        other => other.into(),
    }
}

/// Creates a paid subscription: `pending`, with its first invoice finalized and open.
pub async fn create_paid(state: &AppState, user: UserId, plan_id: i32, quantity: i32) -> Result<Created, ServiceError> {
    check_quantity(quantity)?;
    let plan = plans::active_plan(state, plan_id).await?;
    if plan.is_trial_plan {
        return Err(ServiceError::PlanNotOfferedHere(
            "no such paid plan: this is a trial plan; start it with POST /v1/subscriptions/trial",
        ));
    }
    seat_total(&plan, quantity)?;
    let now = state.now();
    let plan_for_tx = plan.clone();
    let (subscription, invoice) = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let current = db::subscriptions::current_for_user(conn, user).await?;
            if current.iter().any(|s| s.status != SubscriptionStatus::Trial) {
                return Err(ServiceError::AlreadySubscribed);
            }
            let row = db::subscriptions::insert(
                conn,
                &NewSubscription {
                    id: SubscriptionId::new(),
                    user_id: user,
                    plan_id: plan_for_tx.id,
                    quantity,
                    status: SubscriptionStatus::Pending.to_owned(),
                    is_trial: false,
                    billing_anchor: None,
                    current_period_start: None,
                    current_period_end: None,
                    trial_start: None,
                    trial_end: None,
                },
            )
            .await
            .map_err(map_insert_error)?;
            let draft = InvoiceDraft {
                user_id: user,
                subscription_id: Some(row.id),
                kind: InvoiceKind::Initial,
                currency: plan_for_tx.price.currency(),
                lines: Line::period_fee(&plan_for_tx.name, plan_for_tx.cycle, &plan_for_tx.pricing(), quantity, None)
                    .map_err(ServiceError::internal)?,
                period: None,
                due_at: Some(now + PENDING_TTL),
            };
            let draft_row = invoices::insert_draft(conn, &draft).await?;
            let invoice = invoices::finalize(conn, draft_row.id, now).await?;
            log_event(
                conn,
                row.id,
                HistoryEntry::Created,
                None,
                row.status,
                json!({"plan_id": plan_for_tx.id, "quantity": quantity, "invoice_id": invoice.id}),
                now,
            )
            .await?;
            Ok((row, invoice))
        })
        .await?;
    tracing::info!(subscription_id = %subscription.id, invoice_id = %invoice.id, "paid subscription created");
    Ok(Created { subscription, plan, invoice })
}

/// Starts a trial at once, without a card. One trial per user, ever.
pub async fn create_trial(
    state: &AppState,
    user: UserId,
    plan_id: i32,
) -> Result<(SubscriptionRow, Plan), ServiceError> {
    let plan = plans::active_plan(state, plan_id).await?;
    if !plan.is_trial_plan {
        return Err(ServiceError::PlanNotOfferedHere(
            "no such trial plan: subscribe to a paid plan with POST /v1/subscriptions",
        ));
    }
    let now = state.now();
    let end = billing_domain::period::trial_end(now, plan.trial_period_days);
    let plan_id = plan.id;
    let row = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            if db::subscriptions::has_had_trial(conn, user).await? {
                return Err(ServiceError::TrialAlreadyUsed);
            }
            if !db::subscriptions::current_for_user(conn, user).await?.is_empty() {
                return Err(ServiceError::AlreadySubscribed);
            }
            let row = db::subscriptions::insert(
                conn,
                &NewSubscription {
                    id: SubscriptionId::new(),
                    user_id: user,
                    plan_id,
                    quantity: 1,
                    status: SubscriptionStatus::Trial.to_owned(),
                    is_trial: true,
                    billing_anchor: Some(now),
                    current_period_start: Some(now),
                    current_period_end: Some(end),
                    trial_start: Some(now),
                    trial_end: Some(end),
                },
            )
            .await
            .map_err(map_insert_error)?;
            log_event(
                conn,
                row.id,
                HistoryEntry::TrialStarted,
                None,
                row.status,
                json!({"plan_id": plan_id, "trial_end": end}),
                now,
            )
            .await?;
            Ok(row)
        })
        .await?;
    tracing::info!(subscription_id = %row.id, "trial started");
    Ok((row, plan))
}

/// The caller's subscriptions, newest first.
pub async fn list_mine(state: &AppState, user: UserId) -> Result<std::sync::Arc<Vec<SubscriptionRow>>, ServiceError> {
    Ok(state.subscriptions.of_user(&state.infra.db, user).await?)
}

/// One subscription: its owner or an admin; anyone else gets 404 (its existence is not revealed).
pub async fn get(state: &AppState, caller: AuthUser, id: SubscriptionId) -> Result<SubscriptionRow, ServiceError> {
    let row =
        db::subscriptions::find(&mut *state.conn().await?, id).await?.ok_or(ServiceError::SubscriptionNotFound)?;
    if row.user_id != caller.id.into() && !caller.is_admin() {
        return Err(ServiceError::SubscriptionNotFound);
    }
    Ok(row)
}

/// The event log of one subscription (owner or admin).
pub async fn events(
    state: &AppState,
    caller: AuthUser,
    id: SubscriptionId,
) -> Result<Vec<SubscriptionEventRow>, ServiceError> {
    get(state, caller, id).await?;
    Ok(db::subscriptions::events(&mut *state.conn().await?, id).await?)
}

/// `q:sub:plan_change`: an upgrade's proration invoice, to be charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProrationDue {
    pub invoice_id: InvoiceId,
}

impl Payload for ProrationDue {
    const QUEUE: QueueName = QueueName::SubPlanChange;
    const ACTION: &'static str = "proration";
}

/// Changes the plan and/or seats of an active subscription. A higher price per period applies now, with a
/// proration invoice; a lower one is scheduled for the period end and nothing is refunded. With
/// `expected_version` (the `If-Match` header) the change applies only to that version of the subscription.
pub async fn change(
    state: &AppState,
    caller: AuthUser,
    id: SubscriptionId,
    new_plan_id: Option<i32>,
    new_quantity: Option<i32>,
    expected_version: Option<i32>,
    preview: bool,
) -> Result<Changed, ServiceError> {
    if new_plan_id.is_none() && new_quantity.is_none() {
        return Err(ServiceError::invalid("body", "give plan_id, quantity or both"));
    }
    if let Some(q) = new_quantity {
        check_quantity(q)?;
    }
    let row = get(state, caller, id).await?;
    // `If-Match`: the client changes the version it saw, or nothing.
    if expected_version.is_some_and(|v| v != row.version) {
        return Err(ServiceError::ConcurrentUpdate);
    }
    if row.status != SubscriptionStatus::Active {
        return Err(ServiceError::InvalidState(format!("a {} subscription cannot change plan", row.status)));
    }
    let old_plan = state.plans.get(&state.infra.db, row.plan_id).await?.ok_or(ServiceError::PlanNotFound)?;
    let new_plan = match new_plan_id {
        Some(pid) => plans::active_plan(state, pid).await?,
        None => old_plan.clone(),
    };
    if new_plan.is_trial_plan {
        return Err(ServiceError::PlanNotOfferedHere(
            "no such paid plan: a subscription cannot change to a trial plan",
        ));
    }
    if new_plan.price.currency() != old_plan.price.currency() {
        return Err(ServiceError::invalid("plan_id", "the new plan bills in another currency"));
    }
    let quantity = new_quantity.unwrap_or(row.quantity);
    if new_plan.id == row.plan_id && quantity == row.quantity {
        if row.pending_plan_id.is_none() && row.pending_quantity.is_none() {
            return Err(ServiceError::invalid("body", "this is already the subscription's plan and quantity"));
        }
        // Back to what it has: the change scheduled for the period end is undone.
        if preview {
            let would = SubscriptionRow { pending_plan_id: None, pending_quantity: None, ..row };
            let next = billing::upcoming(state, &would).await?;
            return Ok(Changed {
                subscription: would,
                proration: None,
                invoice: None,
                scheduled: false,
                carried: false,
                preview: Some(Some(next)),
            });
        }
        let now = state.now();
        let data = json!({"pending_plan_id": row.pending_plan_id, "pending_quantity": row.pending_quantity});
        let subscription = state
            .conn()
            .await?
            .transaction::<_, ServiceError, _>(async move |conn| {
                let changes = SubscriptionChanges {
                    pending_plan_id: Some(None),
                    pending_quantity: Some(None),
                    ..Default::default()
                };
                let event = SubscriptionEvent::SchedulePlanChange;
                transition(conn, &row, event, HistoryEntry::PlanChangeUnscheduled, changes, data, now).await
            })
            .await?;
        return Ok(Changed {
            subscription,
            proration: None,
            invoice: None,
            scheduled: false,
            carried: false,
            preview: None,
        });
    }
    seat_total(&new_plan, quantity)?;
    let (Some(start), Some(end)) = (row.current_period_start, row.current_period_end) else {
        return Err(ServiceError::Internal("an active subscription without a period".to_owned()));
    };
    let now = state.now();
    let old_seats =
        Seats { plan: &old_plan.name, price: old_plan.pricing(), cycle: old_plan.cycle, quantity: row.quantity };
    let new_seats = Seats { plan: &new_plan.name, price: new_plan.pricing(), cycle: new_plan.cycle, quantity };
    let applies_now = plan_change::applies_now(&old_seats, &new_seats).map_err(ServiceError::internal)?;

    if !applies_now && preview {
        let would = SubscriptionRow { pending_plan_id: Some(new_plan.id), pending_quantity: Some(quantity), ..row };
        let next = billing::upcoming(state, &would).await?;
        return Ok(Changed {
            subscription: would,
            proration: None,
            invoice: None,
            scheduled: true,
            carried: false,
            preview: Some(Some(next)),
        });
    }
    if !applies_now {
        // Scheduled for the period end: the customer keeps what they paid for until then.
        let data = json!({"from_plan_id": row.plan_id, "to_plan_id": new_plan.id, "from_quantity": row.quantity, "to_quantity": quantity, "effective_at": end});
        let changes = SubscriptionChanges {
            pending_plan_id: Some(Some(new_plan.id)),
            pending_quantity: Some(Some(quantity)),
            ..Default::default()
        };
        let subscription = state
            .conn()
            .await?
            .transaction::<_, ServiceError, _>(async move |conn| {
                let event = SubscriptionEvent::SchedulePlanChange;
                transition(conn, &row, event, HistoryEntry::PlanChangeScheduled, changes, data, now).await
            })
            .await?;
        return Ok(Changed {
            subscription,
            proration: None,
            invoice: None,
            scheduled: true,
            carried: false,
            preview: None,
        });
    }

    let Upgrade { proration, period, restarts_period, lines } =
        plan_change::upgrade(&old_seats, &new_seats, (start, end), now)
            .map_err(|e| ServiceError::InvalidState(e.to_string()))?;
    let mut lines = lines.to_vec();
    // Usage the renewal will not bill is billed with the change, priced by the plan it was used under: all of it
    // when the period ends now (a longer cycle), else that of features the new plan does not bill (the rest of the
    // period's usage is billed at its end, by the plan then in effect).
    let ends_here: Vec<&str> = old_plan
        .features
        .billed()
        .map(|(name, _)| name)
        .filter(|name| restarts_period || !new_plan.features.billed().any(|(kept, _)| kept == *name))
        .collect();
    if !ends_here.is_empty() {
        crate::services::usage::sync(state).await?;
        let used = billing::folded_usage(&mut *state.conn().await?, &row, &old_plan, start).await?;
        // `usage_lines` prices only the features `used` names.
        let used = used.into_iter().filter(|(name, _)| ends_here.contains(&name.as_str())).collect();
        lines.extend(billing::usage_lines(&old_plan, &used, (start, now))?);
    }
    let new_period = restarts_period.then_some(period);
    let mut data = json!({
        "from_plan_id": row.plan_id, "to_plan_id": new_plan.id, "from_quantity": row.quantity, "to_quantity": quantity,
        "credit": proration.credit.amount_string(), "charge": proration.charge.amount_string(), "net": proration.net.amount_string(),
        "currency": proration.net.currency().code(),
    });
    let user_id = row.user_id;
    let currency = new_plan.price.currency();
    // What this change asks for: the proration, and the usage of a period it ends.
    let net = lines
        .iter()
        .skip(2)
        .try_fold(proration.net, |sum, line| sum.checked_add(line.amount))
        .map_err(ServiceError::internal)?;
    if preview {
        // The same decision the change makes below, on the lines waiting now, without their lock.
        let waiting = invoices::waiting(&mut *state.conn().await?, row.id, currency).await?;
        let due =
            waiting.iter().try_fold(net, |sum, line| sum.checked_add(line.amount)).map_err(ServiceError::internal)?;
        let carried = !due.is_negative() && due.minor() < currency.min_charge().minor();
        let mut would =
            SubscriptionRow { plan_id: new_plan.id, quantity, pending_plan_id: None, pending_quantity: None, ..row };
        if let Some((s, e)) = new_period {
            (would.billing_anchor, would.current_period_start, would.current_period_end) = (Some(s), Some(s), Some(e));
        }
        let invoice = (!carried).then(|| InvoiceDraft {
            user_id,
            subscription_id: Some(would.id),
            kind: InvoiceKind::Proration,
            currency,
            lines: lines.iter().cloned().chain(waiting).collect(),
            period: Some(period),
            due_at: Some(now),
        });
        return Ok(Changed {
            subscription: would,
            proration: Some(proration),
            invoice: None,
            scheduled: false,
            carried,
            preview: Some(invoice),
        });
    }
    let (subscription, billed) = state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let row = row.clone();
            {
                // What an invoice made now would ask for: this proration and whatever earlier ones left waiting.
                let waiting = invoices::unbilled(conn, row.id, currency).await?;
                let due = waiting
                    .iter()
                    .try_fold(net, |sum, (_, line)| sum.checked_add(line.amount))
                    .map_err(ServiceError::internal)?;
                let carry = !due.is_negative() && due.minor() < currency.min_charge().minor();
                data["carried_to_next_invoice"] = json!(carry);
                let mut changes = SubscriptionChanges {
                    plan_id: Some(new_plan.id),
                    quantity: Some(quantity),
                    pending_plan_id: Some(None),
                    pending_quantity: Some(None),
                    ..Default::default()
                };
                if let Some((s, e)) = new_period {
                    changes.billing_anchor = Some(Some(s));
                    changes.current_period_start = Some(Some(s));
                    changes.current_period_end = Some(Some(e));
                }
                let subscription = transition(
                    conn,
                    &row,
                    SubscriptionEvent::ChangePlan,
                    HistoryEntry::PlanChanged,
                    changes,
                    data,
                    now,
                )
                .await?;
                if carry {
                    invoices::carry_forward(conn, row.id, &lines).await?;
                    return Ok((subscription, None));
                }
                let draft = InvoiceDraft {
                    user_id,
                    subscription_id: Some(row.id),
                    kind: InvoiceKind::Proration,
                    currency,
                    lines,
                    period: Some(period),
                    due_at: Some(now),
                };
                let draft_row = invoices::insert_draft(conn, &draft).await?;
                let invoice = invoices::finalize(conn, draft_row.id, now).await?;
                // Charged through q:sub:plan_change → q:sub:payment_initiation, committed with the change.
                let job = ProrationDue { invoice_id: invoice.id }
                    .job(format!("plan-change:{}", invoice.id))
                    .correlated(row.id.to_string());
                let outbox_row = outbox::push(conn, QueueName::SubPlanChange.as_str(), &job, None).await?;
                Ok((subscription, Some((invoice, outbox_row, job))))
            }
        })
        .await?;
    let Some((invoice, outbox_row, job)) = billed else {
        return Ok(Changed {
            subscription,
            proration: Some(proration),
            invoice: None,
            scheduled: false,
            carried: true,
            preview: None,
        });
    };
    outbox::send_now(
        &state.infra.db,
        &Queue::new(state.infra.redis.clone(), QueueName::SubPlanChange),
        outbox_row,
        job,
    )
    .await;
    Ok(Changed {
        subscription,
        proration: Some(proration),
        invoice: Some(invoice),
        scheduled: false,
        carried: false,
        preview: None,
    })
}

/// Cancels: an active or past-due subscription at the period end (or now with `immediately`); a trial or a
/// pending one always now (a pending one's open invoice is voided).
/// Cancels `row` at `now`, in the caller's transaction: access ends at once, and nothing more is owed, so its
/// open invoices (the first one, or one in dunning) are voided.
pub async fn end_now(
    conn: &mut AsyncPgConnection,
    row: &SubscriptionRow,
    reason: &str,
    data: Value,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, ServiceError> {
    let changes = SubscriptionChanges {
        canceled_at: Some(Some(now)),
        ended_at: Some(Some(now)),
        cancel_reason: Some(Some(reason.to_owned())),
        cancel_at_period_end: Some(false),
        pause_at: Some(None),
        paused_at: Some(None),
        ..Default::default()
    };
    // Invoices first, then the subscription: the order a payment being applied takes them in.
    let open = db::invoices::open_for_subscription_for_update(conn, row.id).await?;
    let updated = transition(conn, row, SubscriptionEvent::Cancel, HistoryEntry::Canceled, changes, data, now).await?;
    for invoice in open {
        db::invoices::void(conn, invoice.id, now).await?;
    }
    Ok(updated)
}

pub async fn cancel(
    state: &AppState,
    caller: AuthUser,
    id: SubscriptionId,
    immediately: bool,
) -> Result<SubscriptionRow, ServiceError> {
    let row = get(state, caller, id).await?;
    let status = row.status;
    let now = state.now();
    let at_period_end = matches!(status, SubscriptionStatus::Active | SubscriptionStatus::PastDue) && !immediately;
    if at_period_end && row.cancel_at_period_end {
        return Ok(row);
    }
    state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            if at_period_end {
                let changes = SubscriptionChanges {
                    cancel_at_period_end: Some(true),
                    canceled_at: Some(Some(now)),
                    cancel_reason: Some(Some("requested".to_owned())),
                    // Ending supersedes a pause scheduled for the same period end.
                    pause_at: Some(None),
                    ..Default::default()
                };
                let data = json!({"effective_at": row.current_period_end, "pause_unscheduled": row.pause_at.is_some()});
                return transition(
                    conn,
                    &row,
                    SubscriptionEvent::ScheduleCancel,
                    HistoryEntry::CancelScheduled,
                    changes,
                    data,
                    now,
                )
                .await;
            }
            end_now(conn, &row, "requested", json!({"immediately": true}), now).await
        })
        .await
}

/// Undoes a scheduled cancellation before the period ends.
pub async fn reactivate(
    state: &AppState,
    caller: AuthUser,
    id: SubscriptionId,
) -> Result<SubscriptionRow, ServiceError> {
    let row = get(state, caller, id).await?;
    let now = state.now();
    if !row.cancel_at_period_end || row.current_period_end.is_none_or(|end| end <= now) {
        return Err(ServiceError::InvalidState("there is no scheduled cancellation to undo".to_owned()));
    }
    state
        .conn()
        .await?
        .transaction::<_, ServiceError, _>(async move |conn| {
            let changes = SubscriptionChanges {
                cancel_at_period_end: Some(false),
                canceled_at: Some(None),
                cancel_reason: Some(None),
                ..Default::default()
            };
            transition(conn, &row, SubscriptionEvent::Reactivate, HistoryEntry::Reactivated, changes, json!({}), now)
                .await
        })
        .await
}
