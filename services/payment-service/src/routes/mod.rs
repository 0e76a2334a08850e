//! HTTP routes of the payment service.

pub mod internal;
pub mod methods;
pub mod operations;
pub mod payments;

use actix_web::web;

/// Registers every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/payments/process").route(web::post().to(payments::process)))
        .service(web::resource("/v1/payments/history").route(web::get().to(payments::history)))
        .service(web::resource("/v1/payments/{id}").route(web::get().to(payments::get)))
        .service(web::resource("/v1/payments/{id}/refund").route(web::post().to(payments::refund)))
        .service(
            web::resource("/v1/payment-methods")
                .route(web::post().to(methods::save))
                .route(web::get().to(methods::list)),
        )
        .service(web::resource("/v1/payment-methods/{id}").route(web::delete().to(methods::delete)))
        .service(web::resource("/v1/payment-methods/{id}/default").route(web::post().to(methods::make_default)))
        .service(
            web::resource("/v1/internal/users/{id}/default-payment-method")
                .route(web::get().to(internal::default_method)),
        )
        .service(web::resource("/v1/internal/charges").route(web::post().to(internal::charge)))
        .service(web::resource("/v1/admin/webhooks").route(web::get().to(operations::list)))
        .service(web::resource("/v1/admin/webhooks/{id}/redeliver").route(web::post().to(operations::redeliver)))
        .service(web::resource("/v1/webhooks/gateway").route(web::post().to(operations::gateway)));
}
