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
