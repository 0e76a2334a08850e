//! Invoices: built from lines, finalized with a gapless number, read by their owner.

use billing_contract::internal::InvoiceDue;
use billing_domain::invoice::{Line, invoice_number, sequence_month};
use billing_domain::{
    Currency, InvoiceId, InvoiceKind, InvoiceStatus, Money, SubscriptionId, SubscriptionStatus, UserId,
};
use billing_http::AuthUser;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use diesel_async::AsyncPgConnection;

use crate::db;
pub use crate::db::models::{CreditNoteRow, InvoiceLineRow, InvoiceRow};
use crate::db::models::{NewInvoice, PendingItemRow};
use crate::error::ServiceError;
use crate::state::AppState;

/// An invoice to create.
#[derive(Debug, Clone)]
pub struct InvoiceDraft {
    pub user_id: UserId,
    pub subscription_id: Option<SubscriptionId>,
    pub kind: InvoiceKind,
    pub currency: Currency,
    pub lines: Vec<Line>,
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub due_at: Option<DateTime<Utc>>,
}

/// An invoice with its lines.
#[derive(Debug, Clone)]
pub struct InvoiceView {
    pub invoice: InvoiceRow,
    pub lines: Vec<InvoiceLineRow>,
    /// Refunds of its payment, oldest first.
    pub credit_notes: Vec<CreditNoteRow>,
}

/// Inserts `draft` as a draft invoice; its total is the sum of its lines. A subscription's invoice also takes
/// the lines carried forward for it (see [`carry_forward`]), after its own.
pub async fn insert_draft(conn: &mut AsyncPgConnection, draft: &InvoiceDraft) -> Result<InvoiceRow, ServiceError> {
    let carried = match draft.subscription_id {
        Some(subscription) => unbilled(conn, subscription, draft.currency).await?,
        None => Vec::new(),
    };
    let mut draft = draft.clone();
    draft.lines.extend(carried.iter().map(|(_, line)| line.clone()));
    let row = insert_lines(conn, &draft).await?;
    let ids: Vec<i64> = carried.iter().map(|(id, _)| *id).collect();
    if !ids.is_empty() {
        db::invoices::mark_billed(conn, &ids, row.id).await?;
    }
    Ok(row)
}

/// Keeps `lines` for the subscription's next invoice: used for a proration whose net is below the currency's
/// minimum charge, which no gateway would take on its own.
pub async fn carry_forward(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
    lines: &[Line],
) -> Result<(), ServiceError> {
    let items: Vec<PendingItemRow> = lines
        .iter()
        .map(|line| -> Result<PendingItemRow, ServiceError> {
            Ok(PendingItemRow {
                id: 0,
                subscription_id: subscription,
                kind: line.kind,
                description: line.description.clone(),
                quantity: line.quantity,
                unit_amount: line.unit_amount,
                amount: line.amount.to_decimal(),
                currency: line.amount.currency(),
                period_start: line.period.map(|p| p.0),
                period_end: line.period.map(|p| p.1),
                feature: line.feature.clone(),
                tier: line.tier.map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(db::invoices::insert_pending(conn, &items).await?)
}

/// The lines carried forward for `subscription` in `currency` and not yet invoiced, with their ids; locked
/// until the caller's transaction ends, so two invoices can never both take them.
pub async fn unbilled(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
    currency: Currency,
) -> Result<Vec<(i64, Line)>, ServiceError> {
    pending_lines(db::invoices::unbilled_for_update(conn, subscription).await?, currency)
}

/// The lines waiting for `subscription`'s next invoice in `currency`, unlocked: what a preview shows.
pub async fn waiting(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
    currency: Currency,
) -> Result<Vec<Line>, ServiceError> {
    Ok(pending_lines(db::invoices::unbilled(conn, subscription).await?, currency)?
        .into_iter()
        .map(|(_, l)| l)
        .collect())
}

fn pending_lines(rows: Vec<PendingItemRow>, currency: Currency) -> Result<Vec<(i64, Line)>, ServiceError> {
    let money = |value| Money::from_decimal(value, currency).map_err(ServiceError::internal);
    rows.into_iter()
        .filter(|row| row.currency == currency)
        .map(|row| {
            let line = Line {
                kind: row.kind,
                description: row.description,
                quantity: row.quantity,
                unit_amount: row.unit_amount,
                amount: money(row.amount)?,
                period: row.period_start.zip(row.period_end),
                feature: row.feature,
                tier: row.tier.and_then(|t| u32::try_from(t).ok()),
            };
            Ok((row.id, line))
        })
        .collect()
}

async fn insert_lines(conn: &mut AsyncPgConnection, draft: &InvoiceDraft) -> Result<InvoiceRow, ServiceError> {
    let total = billing_domain::invoice::total(draft.lines.iter().map(|l| l.amount), Money::zero(draft.currency))
        .map_err(ServiceError::internal)?;
    let id = InvoiceId::new();
    let amount_due = if total.is_negative() { Money::zero(draft.currency) } else { total };
    let invoice = NewInvoice {
        id,
        user_id: draft.user_id,
        subscription_id: draft.subscription_id,
        status: InvoiceStatus::Draft,
        kind: draft.kind,
        currency: draft.currency,
        subtotal: total.to_decimal(),
        total: total.to_decimal(),
        amount_due: amount_due.to_decimal(),
        period_start: draft.period.map(|p| p.0),
        period_end: draft.period.map(|p| p.1),
        due_at: draft.due_at,
    };
    let lines: Vec<InvoiceLineRow> = draft
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| InvoiceLineRow {
            invoice_id: id,
            position: i32::try_from(i + 1).unwrap_or(i32::MAX),
            kind: line.kind,
            description: line.description.clone(),
            quantity: line.quantity,
            unit_amount: line.unit_amount,
            amount: line.amount.to_decimal(),
            period_start: line.period.map(|p| p.0),
            period_end: line.period.map(|p| p.1),
            feature: line.feature.clone(),
            tier: line.tier.map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
        })
        .collect();
    Ok(db::invoices::insert(conn, &invoice, &lines).await?)
}

/// Gives a draft its number (`INV-YYYYMM-NNNN`, the month of `now`) and opens it, inside the caller's
/// transaction; numbers stay gapless because the month's counter is held until that transaction ends.
pub async fn finalize(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    now: DateTime<Utc>,
) -> Result<InvoiceRow, ServiceError> {
    let sequence = db::invoices::next_number(conn, sequence_month(now)).await?;
    let number = invoice_number(now, u32::try_from(sequence).unwrap_or(0));
    db::invoices::finalize(conn, id, &number, now)
        .await?
        .ok_or_else(|| ServiceError::InvalidState("only a draft invoice can be finalized".to_owned()))
}

/// Finalizes a draft in a transaction of its own.
pub async fn finalize_draft(state: &AppState, id: InvoiceId) -> Result<InvoiceRow, ServiceError> {
    let now = state.now();
    state.conn().await?.transaction::<_, ServiceError, _>(async move |conn| finalize(conn, id, now).await).await
}

/// The caller's invoices, newest first.
pub async fn list_mine(state: &AppState, user: UserId) -> Result<Vec<InvoiceView>, ServiceError> {
    let mut conn = state.conn().await?;
    let invoices = db::invoices::list_for_user(&mut conn, user).await?;
    let ids: Vec<InvoiceId> = invoices.iter().map(|i| i.id).collect();
    let mut lines = db::invoices::lines(&mut conn, &ids).await?;
    let mut notes = db::invoices::credit_notes(&mut conn, &ids).await?;
    Ok(invoices
        .into_iter()
        .map(|invoice| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut lines).into_iter().partition(|l| l.invoice_id == invoice.id);
            lines = rest;
            let (credit_notes, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut notes).into_iter().partition(|n| n.invoice_id == invoice.id);
            notes = rest;
            InvoiceView { invoice, lines: mine, credit_notes }
        })
        .collect())
}

/// One invoice: its owner or an admin; anyone else gets 404.
pub async fn get(state: &AppState, caller: AuthUser, id: InvoiceId) -> Result<InvoiceView, ServiceError> {
    let mut conn = state.conn().await?;
    let invoice = db::invoices::find(&mut conn, id).await?.ok_or(ServiceError::InvoiceNotFound)?;
    if invoice.user_id != caller.id.into() && !caller.is_admin() {
        return Err(ServiceError::InvoiceNotFound);
    }
    let lines = db::invoices::lines(&mut conn, &[id]).await?;
    let credit_notes = db::invoices::credit_notes(&mut conn, &[id]).await?;
    Ok(InvoiceView { invoice, lines, credit_notes })
}

/// The invoice as a PDF, for its owner or an administrator: its number (the file's name) and the document.
pub async fn pdf(state: &AppState, caller: AuthUser, id: InvoiceId) -> Result<(String, Vec<u8>), ServiceError> {
    let view = get(state, caller, id).await?;
    let customer = db::users::find(&mut *state.conn().await?, view.invoice.user_id)
        .await?
        .map(|u| u.email)
        .unwrap_or_else(|| view.invoice.user_id.to_string());
    let name = view.invoice.number.clone().unwrap_or_else(|| id.to_string());
    Ok((name, crate::services::invoice_pdf::render(&view, &customer)))
}

/// The next invoice of the caller's active (or past-due) subscription, or of `subscription` (its owner or an
/// administrator), as its period end would issue it now. Nothing is written.
pub async fn upcoming(
    state: &AppState,
    caller: AuthUser,
    subscription: Option<SubscriptionId>,
) -> Result<InvoiceDraft, ServiceError> {
    let renewing = |s: &crate::db::models::SubscriptionRow| {
        matches!(s.status, SubscriptionStatus::Active | SubscriptionStatus::PastDue)
    };
    let mut conn = state.conn().await?;
    let sub = match subscription {
        Some(id) => db::subscriptions::find(&mut conn, id)
            .await?
            .filter(|s| s.user_id == UserId::from(caller.id) || caller.is_admin())
            .ok_or(ServiceError::SubscriptionNotFound)?,
        None => db::subscriptions::current_for_user(&mut conn, caller.id.into())
            .await?
            .into_iter()
            .find(renewing)
            .ok_or(ServiceError::NothingUpcoming)?,
    };
    drop(conn);
    if !renewing(&sub) {
        return Err(ServiceError::NothingUpcoming);
    }
    crate::services::billing::upcoming(state, &sub).await
}

/// What is due on invoice `id`, for the payment service (asked before every charge).
pub async fn due(state: &AppState, id: InvoiceId) -> Result<InvoiceDue, ServiceError> {
    let (invoice, payment_method_id) =
        db::invoices::find_with_method(&mut *state.conn().await?, id).await?.ok_or(ServiceError::InvoiceNotFound)?;
    Ok(due_of(invoice, payment_method_id))
}

/// The subscription's open invoice; with none open, its newest invoice (not payable, so paying an active
/// subscription is a 409 naming the invoice's status, not a 404).
pub async fn subscription_due(state: &AppState, id: SubscriptionId) -> Result<InvoiceDue, ServiceError> {
    let mut conn = state.conn().await?;
    match db::invoices::due_for_subscription(&mut conn, id).await? {
        Some((invoice, payment_method_id)) => Ok(due_of(invoice, payment_method_id)),
        // Asked only when nothing was found, to say which of the two is missing.
        None => Err(match db::subscriptions::find(&mut conn, id).await? {
            Some(_) => ServiceError::InvoiceNotFound,
            None => ServiceError::SubscriptionNotFound,
        }),
    }
}

fn due_of(invoice: InvoiceRow, payment_method_id: Option<String>) -> InvoiceDue {
    InvoiceDue {
        payable: invoice.status == InvoiceStatus::Open && !invoice.amount_due.is_zero(),
        amount_due: invoice.currency.render(invoice.amount_due),
        invoice_id: invoice.id,
        user_id: invoice.user_id,
        subscription_id: invoice.subscription_id,
        number: invoice.number,
        status: invoice.status.to_string(),
        currency: invoice.currency.to_string(),
        payment_method_id,
    }
}
