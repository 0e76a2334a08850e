//! HTTP routes: extract, call one service function, map the result to a DTO.

pub mod auth;
pub mod entitlements;
pub mod internal;
pub mod invoices;
pub mod plans;
pub mod subscriptions;
pub mod usage;
pub mod webhooks;

use actix_web::web;
use billing_domain::Currency;
use billing_http::rfc3339;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// Registers every route of the service (as resources, so a wrong method is 405).
///
/// The router tries resources in order and runs a regular expression for each pattern with a parameter, but
/// only compares text for a fixed path. So the fixed paths come first, the hottest reads at the head, and the
/// patterns with parameters after them: no fixed path here is also matched by a pattern (`/v1/subscriptions/me`
/// and `/trial` must stay ahead of `/v1/subscriptions/{id}`, which they are).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/auth/me").route(web::get().to(auth::me)))
        .service(web::resource("/v1/subscriptions/me").route(web::get().to(subscriptions::list_mine)))
        .service(web::resource("/v1/usage/use").route(web::post().to(usage::use_feature)))
        .service(web::resource("/v1/usage/limits").route(web::get().to(usage::limits)))
        .service(web::resource("/v1/usage/me").route(web::get().to(usage::me)))
        .service(web::resource("/v1/entitlements/me").route(web::get().to(entitlements::me)))
        .service(web::resource("/v1/webhooks/payment").route(web::post().to(webhooks::payment)))
        .service(web::resource("/v1/auth/register").route(web::post().to(auth::register)))
        .service(web::resource("/v1/auth/login").route(web::post().to(auth::login)))
        .service(web::resource("/v1/auth/refresh").route(web::post().to(auth::refresh)))
        .service(web::resource("/v1/plans").route(web::get().to(plans::list)))
        .service(web::resource("/v1/admin/plans").route(web::post().to(plans::create)))
        .service(web::resource("/v1/subscriptions").route(web::post().to(subscriptions::create)))
        .service(web::resource("/v1/subscriptions/trial").route(web::post().to(subscriptions::create_trial)))
        .service(web::resource("/v1/invoices/me").route(web::get().to(invoices::list_mine)))
        .service(web::resource("/v1/invoices/upcoming").route(web::get().to(invoices::upcoming)))
        // Patterns with parameters.
        .service(
            web::resource("/v1/subscriptions/{id}")
                .route(web::get().to(subscriptions::get))
                .route(web::put().to(subscriptions::change))
                .route(web::delete().to(subscriptions::cancel)),
        )
        .service(web::resource("/v1/subscriptions/{id}/reactivate").route(web::post().to(subscriptions::reactivate)))
        .service(web::resource("/v1/subscriptions/{id}/pause").route(web::post().to(subscriptions::pause)))
        .service(web::resource("/v1/subscriptions/{id}/resume").route(web::post().to(subscriptions::resume)))
        .service(web::resource("/v1/subscriptions/{id}/events").route(web::get().to(subscriptions::events)))
        .service(web::resource("/v1/internal/invoices/{id}").route(web::get().to(internal::invoice)))
        .service(web::resource("/v1/internal/subscriptions/{id}/due").route(web::get().to(internal::subscription_due)))
        .service(web::resource("/v1/invoices/{id}").route(web::get().to(invoices::get)))
        .service(web::resource("/v1/invoices/{id}/pdf").route(web::get().to(invoices::pdf)))
        .service(web::resource("/v1/plans/{id}").route(web::get().to(plans::get)))
        .service(
            web::resource("/v1/admin/plans/{id}")
                .route(web::put().to(plans::update))
                .route(web::delete().to(plans::deactivate)),
        )
        .service(web::resource("/v1/admin/users/{id}/role").route(web::put().to(auth::set_role)));
}

pub(crate) fn ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(rfc3339)
}

/// Renders a stored amount with its currency's digits.
pub(crate) fn amount(value: Decimal, currency: Currency) -> String {
    currency.render(value)
}
