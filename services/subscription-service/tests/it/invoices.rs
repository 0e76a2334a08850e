//! Invoice numbering under concurrency.

use crate::common;

use std::collections::BTreeSet;

use billing_domain::invoice::Line;
use chrono::Utc;
use common::Ctx;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::join_all;
use subscription_service::services::invoices::{InvoiceDraft, finalize_draft, insert_draft};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finalizations_in_one_month_get_gapless_numbers() {
    let ctx = Ctx::new().await;
    let token = ctx.user().await;
    let me = ctx.call(reqwest::Method::GET, "/v1/auth/me", Some(&token), None).await;
    let user: uuid::Uuid = me.data()["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    let usd = billing_domain::Currency::from_code("USD").unwrap_or_else(|| panic!("USD"));
    let price = billing_domain::Money::from_minor(2999, usd);
    let mut conn = AsyncPgConnection::establish(&ctx.app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
    let mut drafts = Vec::new();
    for i in 0..200 {
        let draft = InvoiceDraft {
            user_id: user.into(),
            subscription_id: None,
            kind: billing_domain::InvoiceKind::Proration,
            currency: usd,
            lines: vec![Line {
                kind: billing_domain::LineKind::Subscription,
                description: format!("line {i}"),
                quantity: 1,
                unit_amount: price.to_decimal(),
                amount: price,
                period: None,
                feature: None,
                tier: None,
            }],
            period: None,
            due_at: None,
        };
        drafts.push(insert_draft(&mut conn, &draft).await.unwrap_or_else(|e| panic!("{e}")).id);
    }
    let state = subscription_service::build_state(&ctx.app.infra).unwrap_or_else(|e| panic!("{e}"));
    let results = join_all(drafts.iter().map(|id| {
        let state = state.clone();
        let id = *id;
        async move { finalize_draft(&state, id).await }
    }))
    .await;
    let month = Utc::now().format("%Y%m").to_string();
    let mut numbers = BTreeSet::new();
    for result in results {
        let invoice = result.unwrap_or_else(|e| panic!("{e}"));
        let number = invoice.number.unwrap_or_default();
        let (prefix, seq) = number.rsplit_once('-').unwrap_or_default();
        assert_eq!(prefix, format!("INV-{month}"));
        assert_eq!(invoice.status, billing_domain::InvoiceStatus::Open);
        numbers.insert(seq.parse::<u32>().unwrap_or(0));
    }
    assert_eq!(numbers, (1..=200).collect::<BTreeSet<u32>>(), "numbers 1..200, no gap, no duplicate");
    // Finalizing twice is refused.
    assert!(finalize_draft(&state, drafts[0]).await.is_err());
}

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The reads keyed by a subscription that run at every payment (the amount due) and cancellation (its open
/// invoices) find its invoices through an index: with sequential scans priced out, none is left in their plans.
#[tokio::test]
async fn a_subscriptions_invoices_are_found_through_an_index() {
    let ctx = Ctx::new().await;
    let mut conn = AsyncPgConnection::establish(&ctx.app.db.url).await.unwrap_or_else(|e| panic!("{e}"));
    diesel_async::RunQueryDsl::execute(diesel::sql_query("SET enable_seqscan = off"), &mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sub = uuid::Uuid::new_v4();
    for query in [
        // db::invoices::due_for_subscription
        format!(
            "SELECT i.id, s.payment_method_id FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id \
             WHERE i.subscription_id = '{sub}' ORDER BY i.status = 'open' DESC, i.created_at DESC, i.id DESC LIMIT 1"
        ),
        // db::invoices::open_for_subscription_for_update
        format!("SELECT id FROM invoices WHERE subscription_id = '{sub}' AND status = 'open' ORDER BY id FOR UPDATE"),
    ] {
        let plan: Vec<PlanLine> =
            diesel_async::RunQueryDsl::load(diesel::sql_query(format!("EXPLAIN {query}")), &mut conn)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let plan: Vec<String> = plan.into_iter().map(|l| l.line).collect();
        assert!(!plan.iter().any(|l| l.contains("Seq Scan on invoices")), "{query}:\n{}", plan.join("\n"));
    }
}
