//! Invoices, their lines, and the gapless monthly number sequence.

use billing_domain::{InvoiceId, SubscriptionId, TransactionId, UserId};
use billing_domain::{InvoiceKind, InvoiceStatus, LineKind};
use billing_infra::CachedDsl;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{CreditNoteRow, InvoiceLineRow, InvoiceRow, NewInvoice, PendingItemRow};
use super::schema::{
    credit_note_number_counters, credit_notes, invoice_lines, invoice_number_counters, invoices, pending_invoice_items,
    subscriptions,
};
use billing_infra::DbError;

/// Invoices of up to this many lines have their lines' insert kept prepared on the connection.
const KEPT_LINE_COUNTS: usize = 4;

/// Inserts an invoice with its lines.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    invoice: &NewInvoice,
    lines: &[InvoiceLineRow],
) -> Result<InvoiceRow, DbError> {
    let row = diesel::insert_into(invoices::table)
        .values(invoice)
        .returning(InvoiceRow::as_returning())
        .cached()
        .get_result(conn)
        .await?;
    // Kept prepared for the usual few lines (one statement per line count), prepared each time beyond.
    let insert = diesel::insert_into(invoice_lines::table).values(lines);
    if lines.len() <= KEPT_LINE_COUNTS {
        insert.cached().execute(conn).await?;
    } else {
        insert.execute(conn).await?;
    }
    Ok(row)
}

/// The next number of `month` (`202611`). The counter row stays locked until the caller's transaction ends,
/// so concurrent finalizations take numbers one after another and a rollback returns its number: no gaps.
pub async fn next_number(conn: &mut AsyncPgConnection, month: i32) -> Result<i32, DbError> {
    Ok(diesel::insert_into(invoice_number_counters::table)
        .values((invoice_number_counters::month.eq(month), invoice_number_counters::last_number.eq(1)))
        .on_conflict(invoice_number_counters::month)
        .do_update()
        .set(
            invoice_number_counters::last_number
                .eq(invoice_number_counters::last_number + excluded(invoice_number_counters::last_number)),
        )
        .returning(invoice_number_counters::last_number)
        .cached()
        .get_result(conn)
        .await?)
}

/// Moves a draft to `open` with its number; `None` when it was not a draft.
pub async fn finalize(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    number: &str,
    at: DateTime<Utc>,
) -> Result<Option<InvoiceRow>, DbError> {
    Ok(diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Draft)))
        .set((invoices::status.eq(InvoiceStatus::Open), invoices::number.eq(number), invoices::finalized_at.eq(at)))
        .returning(InvoiceRow::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// Voids an open invoice.
pub async fn void(conn: &mut AsyncPgConnection, id: InvoiceId, at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Open)))
        .set((
            invoices::status.eq(InvoiceStatus::Void),
            invoices::voided_at.eq(at),
            invoices::amount_due.eq(rust_decimal::Decimal::ZERO),
        ))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// One invoice.
pub async fn find(conn: &mut AsyncPgConnection, id: InvoiceId) -> Result<Option<InvoiceRow>, DbError> {
    Ok(invoices::table.find(id).select(InvoiceRow::as_select()).first(conn).await.optional()?)
}

/// A user's invoices, newest first.
pub async fn list_for_user(conn: &mut AsyncPgConnection, user: UserId) -> Result<Vec<InvoiceRow>, DbError> {
    Ok(invoices::table
        .filter(invoices::user_id.eq(user))
        .order((invoices::created_at.desc(), invoices::id.desc()))
        .select(InvoiceRow::as_select())
        .load(conn)
        .await?)
}

/// An invoice with its subscription's saved payment method (none for an invoice without a subscription), in one
/// statement: what the payment service asks before every charge.
pub async fn find_with_method(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
) -> Result<Option<(InvoiceRow, Option<String>)>, DbError> {
    Ok(invoices::table
        .left_join(subscriptions::table)
        .filter(invoices::id.eq(id))
        .select((InvoiceRow::as_select(), subscriptions::payment_method_id.nullable()))
        .first(conn)
        .await
        .optional()?)
}

/// The subscription's invoice to pay, with its saved payment method, in one statement: its newest open invoice or,
/// with none open, its newest invoice of any status. `None` when it has no invoice (or does not exist).
pub async fn due_for_subscription(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
) -> Result<Option<(InvoiceRow, Option<String>)>, DbError> {
    Ok(invoices::table
        .inner_join(subscriptions::table)
        .filter(invoices::subscription_id.eq(subscription))
        .order((invoices::status.eq(InvoiceStatus::Open).desc(), invoices::created_at.desc(), invoices::id.desc()))
        .select((InvoiceRow::as_select(), subscriptions::payment_method_id))
        .first(conn)
        .await
        .optional()?)
}

/// The open invoices of a subscription, locked for the rest of the transaction. Invoices are locked before their
/// subscription everywhere (a payment applying, a cancellation voiding), so the two never deadlock.
pub async fn open_for_subscription_for_update(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
) -> Result<Vec<InvoiceRow>, DbError> {
    Ok(invoices::table
        .filter(invoices::subscription_id.eq(subscription))
        .filter(invoices::status.eq(InvoiceStatus::Open))
        .order(invoices::id)
        .for_update()
        .select(InvoiceRow::as_select())
        .load(conn)
        .await?)
}

/// The lines of `invoices`, in order.
pub async fn lines(conn: &mut AsyncPgConnection, ids: &[InvoiceId]) -> Result<Vec<InvoiceLineRow>, DbError> {
    Ok(invoice_lines::table
        .filter(invoice_lines::invoice_id.eq_any(ids))
        .order((invoice_lines::invoice_id.asc(), invoice_lines::position.asc()))
        .select(InvoiceLineRow::as_select())
        .load(conn)
        .await?)
}

/// One invoice, locked for the rest of the transaction.
pub async fn find_for_update(conn: &mut AsyncPgConnection, id: InvoiceId) -> Result<Option<InvoiceRow>, DbError> {
    Ok(invoices::table.find(id).for_update().select(InvoiceRow::as_select()).first(conn).await.optional()?)
}

/// Marks an open invoice paid by `transaction` (none for an invoice with nothing to pay), dated with `period` when
/// it learns its period from this payment (a first invoice: see [`date_lines`]).
pub async fn mark_paid(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    amount: rust_decimal::Decimal,
    transaction: Option<TransactionId>,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    at: DateTime<Utc>,
) -> Result<InvoiceRow, DbError> {
    let dated = period.map(|(start, end)| (invoices::period_start.eq(start), invoices::period_end.eq(end)));
    Ok(diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Open)))
        .set((
            invoices::status.eq(InvoiceStatus::Paid),
            invoices::amount_paid.eq(amount),
            invoices::amount_due.eq(rust_decimal::Decimal::ZERO),
            invoices::paid_at.eq(at),
            invoices::paid_by_transaction_id.eq(transaction),
            invoices::next_attempt_at.eq(None::<DateTime<Utc>>),
            dated,
        ))
        .returning(InvoiceRow::as_returning())
        .cached()
        .get_result(conn)
        .await?)
}

/// Dates an invoice's undated lines with the period they pay for: a first invoice learns its period when the
/// payment that activates the subscription arrives, in the same transaction, and its lines are dated before it is
/// paid and frozen ([`mark_paid`] dates the invoice itself).
pub async fn date_lines(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::update(
        invoice_lines::table.filter(invoice_lines::invoice_id.eq(id)).filter(invoice_lines::period_start.is_null()),
    )
    .set((invoice_lines::period_start.eq(start), invoice_lines::period_end.eq(end)))
    .cached()
    .execute(conn)
    .await?;
    Ok(())
}

/// Numbers the next charge attempt of an open invoice (clearing its retry time); the new attempt number.
pub async fn start_attempt(conn: &mut AsyncPgConnection, id: InvoiceId) -> Result<i32, DbError> {
    Ok(diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Open)))
        .set((
            invoices::attempt_count.eq(invoices::attempt_count + 1),
            invoices::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(invoices::attempt_count)
        .cached()
        .get_result(conn)
        .await?)
}

/// Records a failed attempt and when dunning tries again.
pub async fn schedule_retry(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    at: DateTime<Utc>,
    decline_code: &str,
) -> Result<(), DbError> {
    diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Open)))
        .set((invoices::next_attempt_at.eq(at), invoices::last_decline_code.eq(decline_code)))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Dunning gave up: the invoice stays unpaid for good.
pub async fn mark_uncollectible(
    conn: &mut AsyncPgConnection,
    id: InvoiceId,
    decline_code: &str,
) -> Result<(), DbError> {
    diesel::update(invoices::table.find(id).filter(invoices::status.eq(InvoiceStatus::Open)))
        .set((
            invoices::status.eq(InvoiceStatus::Uncollectible),
            invoices::last_decline_code.eq(decline_code),
            invoices::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// Open invoices whose dunning retry is due at `now`, oldest first.
pub async fn retries_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<InvoiceId>, DbError> {
    Ok(invoices::table
        .filter(invoices::status.eq(InvoiceStatus::Open))
        .filter(invoices::next_attempt_at.le(now))
        .order(invoices::next_attempt_at.asc())
        .limit(limit)
        .select(invoices::id)
        .load(conn)
        .await?)
}

/// Open first invoices past their due time (their subscriptions were never paid).
pub async fn initial_overdue(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<InvoiceId>, DbError> {
    Ok(invoices::table
        .filter(invoices::status.eq(InvoiceStatus::Open))
        .filter(invoices::kind.eq(InvoiceKind::Initial))
        .filter(invoices::due_at.le(now))
        .order(invoices::due_at.asc())
        .limit(limit)
        .select(invoices::id)
        .load(conn)
        .await?)
}

/// The live (not void) invoice of `kind` for a subscription's period starting at `start`.
pub async fn for_period(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
    kind: InvoiceKind,
    start: DateTime<Utc>,
) -> Result<Option<InvoiceRow>, DbError> {
    Ok(invoices::table
        .filter(invoices::subscription_id.eq(subscription))
        .filter(invoices::kind.eq(kind))
        .filter(invoices::period_start.eq(start))
        .filter(invoices::status.ne(InvoiceStatus::Void))
        .select(InvoiceRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Keeps lines for the subscription's next invoice.
pub async fn insert_pending(conn: &mut AsyncPgConnection, items: &[PendingItemRow]) -> Result<(), DbError> {
    diesel::insert_into(pending_invoice_items::table).values(items).execute(conn).await?;
    Ok(())
}

/// The subscription's lines not yet on an invoice, oldest first, locked until the caller's transaction ends.
pub async fn unbilled_for_update(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
) -> Result<Vec<PendingItemRow>, DbError> {
    Ok(unbilled_query(subscription).for_update().load(conn).await?)
}

/// The lines waiting for the subscription's next invoice, read without a lock (a preview).
pub async fn unbilled(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
) -> Result<Vec<PendingItemRow>, DbError> {
    Ok(unbilled_query(subscription).load(conn).await?)
}

/// The lines of a subscription not yet on an invoice, oldest first.
type UnbilledQuery = diesel::dsl::Select<
    diesel::dsl::Order<
        diesel::dsl::Filter<
            diesel::dsl::Filter<
                pending_invoice_items::table,
                diesel::dsl::Eq<pending_invoice_items::subscription_id, SubscriptionId>,
            >,
            diesel::dsl::IsNull<pending_invoice_items::invoice_id>,
        >,
        pending_invoice_items::id,
    >,
    diesel::dsl::AsSelect<PendingItemRow, diesel::pg::Pg>,
>;

fn unbilled_query(subscription: SubscriptionId) -> UnbilledQuery {
    pending_invoice_items::table
        .filter(pending_invoice_items::subscription_id.eq(subscription))
        .filter(pending_invoice_items::invoice_id.is_null())
        .order(pending_invoice_items::id)
        .select(PendingItemRow::as_select())
}

/// Records that `ids` are on `invoice`.
pub async fn mark_billed(conn: &mut AsyncPgConnection, ids: &[i64], invoice: InvoiceId) -> Result<(), DbError> {
    diesel::update(pending_invoice_items::table.filter(pending_invoice_items::id.eq_any(ids)))
        .set(pending_invoice_items::invoice_id.eq(invoice))
        .cached()
        .execute(conn)
        .await?;
    Ok(())
}

/// The next credit note number of `month`, held like [`next_number`]'s until the caller's transaction ends.
pub async fn next_credit_note_number(conn: &mut AsyncPgConnection, month: i32) -> Result<i32, DbError> {
    Ok(diesel::insert_into(credit_note_number_counters::table)
        .values((credit_note_number_counters::month.eq(month), credit_note_number_counters::last_number.eq(1)))
        .on_conflict(credit_note_number_counters::month)
        .do_update()
        .set(
            credit_note_number_counters::last_number
                .eq(credit_note_number_counters::last_number + excluded(credit_note_number_counters::last_number)),
        )
        .returning(credit_note_number_counters::last_number)
        .cached()
        .get_result(conn)
        .await?)
}

/// Issues a credit note; `None` when its refund already has one.
pub async fn insert_credit_note(
    conn: &mut AsyncPgConnection,
    note: &CreditNoteRow,
) -> Result<Option<CreditNoteRow>, DbError> {
    Ok(diesel::insert_into(credit_notes::table)
        .values(note)
        .on_conflict(credit_notes::refund_id)
        .do_nothing()
        .returning(CreditNoteRow::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// The credit notes of `invoices`, oldest first.
pub async fn credit_notes(conn: &mut AsyncPgConnection, invoices: &[InvoiceId]) -> Result<Vec<CreditNoteRow>, DbError> {
    Ok(credit_notes::table
        .filter(credit_notes::invoice_id.eq_any(invoices))
        .order((credit_notes::created_at, credit_notes::number))
        .select(CreditNoteRow::as_select())
        .load(conn)
        .await?)
}

/// The period of one of `subscriptions` starting within `[from, to)` as its invoices say: (subscription, start,
/// end), the end being that of the period its usage was billed for (a period cut short by a pause or an upgrade
/// ends there), else that of the period an invoice paid for.
pub async fn period_from(
    conn: &mut AsyncPgConnection,
    subscriptions: &[SubscriptionId],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Option<(SubscriptionId, DateTime<Utc>, DateTime<Utc>)>, DbError> {
    type Bounds = (Option<SubscriptionId>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let billed: Option<Bounds> = invoice_lines::table
        .inner_join(invoices::table)
        .filter(invoices::subscription_id.eq_any(subscriptions))
        .filter(invoices::status.ne(InvoiceStatus::Void))
        .filter(invoice_lines::kind.eq(LineKind::Usage))
        .filter(invoice_lines::period_start.ge(from))
        .filter(invoice_lines::period_start.lt(to))
        .select((invoices::subscription_id, invoice_lines::period_start, invoice_lines::period_end))
        .first(conn)
        .await
        .optional()?;
    if let Some((Some(sub), Some(start), Some(end))) = billed {
        return Ok(Some((sub, start, end)));
    }
    let paid: Option<Bounds> = invoices::table
        .filter(invoices::subscription_id.eq_any(subscriptions))
        .filter(invoices::status.ne(InvoiceStatus::Void))
        .filter(invoices::period_start.ge(from))
        .filter(invoices::period_start.lt(to))
        .order(invoices::period_end.asc())
        .select((invoices::subscription_id, invoices::period_start, invoices::period_end))
        .first(conn)
        .await
        .optional()?;
    Ok(match paid {
        Some((Some(sub), Some(start), Some(end))) => Some((sub, start, end)),
        _ => None,
    })
}

/// The features of `subscription` whose usage in the period starting at `start` is already on an invoice (void
/// ones aside) or waiting for one: an upgrade to a plan that does not bill a feature bills it early.
pub async fn usage_billed(
    conn: &mut AsyncPgConnection,
    subscription: SubscriptionId,
    start: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    let mut on_invoices: Vec<Option<String>> = invoice_lines::table
        .inner_join(invoices::table)
        .filter(invoices::subscription_id.eq(subscription))
        .filter(invoices::status.ne(InvoiceStatus::Void))
        .filter(invoice_lines::kind.eq(LineKind::Usage))
        .filter(invoice_lines::period_start.eq(start))
        .select(invoice_lines::feature)
        .distinct()
        .load(conn)
        .await?;
    let waiting: Vec<Option<String>> = pending_invoice_items::table
        .filter(pending_invoice_items::subscription_id.eq(subscription))
        .filter(pending_invoice_items::kind.eq(LineKind::Usage))
        .filter(pending_invoice_items::period_start.eq(start))
        .select(pending_invoice_items::feature)
        .distinct()
        .load(conn)
        .await?;
    on_invoices.extend(waiting);
    Ok(on_invoices.into_iter().flatten().collect())
}
