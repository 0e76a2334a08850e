//! HTTP routes of the payment service.

pub mod internal;
pub mod methods;
pub mod operations;
pub mod payments;

use actix_web::web;
use billing_domain::Currency;
use billing_http::openapi::{alternatives, amounts_by_currency, refine_schema};
use serde_json::{Value, json};

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

/// States in the document the body rules between fields, which the derive cannot: how a payment is funded (a saved
/// method or every card field), the card's own rules, and the amount's digits and minimum in its currency.
pub fn document_rules(doc: &mut utoipa::openapi::OpenApi) {
    let amounts = amounts_by_currency("amount", Currency::all().iter().map(|c| (c.code(), c.amount_pattern(false))));
    let given = |fields: &[&str]| {
        let properties: serde_json::Map<String, Value> =
            fields.iter().map(|f| (f.to_string(), json!({"type": "string"}))).collect();
        json!({"required": fields, "properties": properties})
    };
    let absent = |fields: &[&str]| json!({"properties": fields.iter().map(|f| (f.to_string(), Value::Null)).collect::<serde_json::Map<_, _>>()});
    refine_schema(doc, "ProcessBody", |mut payment| {
        card_properties(&mut payment);
        let amounts: Vec<Value> = amounts
            .iter()
            .map(|alt| {
                let mut alt = alt.clone();
                alt["required"] = json!(["amount", "currency"]);
                alt
            })
            .collect();
        let target = vec![given(&["subscription_id"]), given(&["invoice_id"])];
        let mut funding = vec![overlay_all(&[given(&["payment_method_id"]), absent(&CARD_FIELDS)])];
        funding.extend(
            card_kinds()
                .into_iter()
                .map(|kind| overlay_all(&[given(&CARD_FIELDS), absent(&["payment_method_id"]), kind])),
        );
        alternatives(&payment, &[amounts, target, funding])
    });
    refine_schema(doc, "SaveBody", |mut card| {
        card_properties(&mut card);
        alternatives(&card, &[card_kinds()])
    });
}

/// One alternative made of several: their properties (a later one's keys winning) and requirements together.
fn overlay_all(parts: &[Value]) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        for (name, property) in part["properties"].as_object().into_iter().flatten() {
            match (properties.get_mut(name), property) {
                (Some(Value::Object(existing)), Value::Object(extra)) => existing.extend(extra.clone()),
                _ => {
                    properties.insert(name.clone(), property.clone());
                }
            }
        }
        required.extend(part["required"].as_array().into_iter().flatten().cloned());
    }
    json!({"properties": properties, "required": required})
}

const CARD_FIELDS: [&str; 4] = ["card_number", "card_expiry", "card_cvv", "cardholder_name"];

/// The card fields' own forms. `format: card-number` is a Luhn-valid number, `format: card-expiry` a month not
/// yet past: what a pattern cannot say.
fn card_properties(body: &mut Value) {
    let rules = json!({
        "card_number": {"format": "card-number", "pattern": "^[0-9]{12,19}$",
            "description": "12–19 digits passing the Luhn check (spaces and dashes between them are also taken)"},
        "card_expiry": {"format": "card-expiry", "pattern": "^(0[1-9]|1[0-2])/[0-9]{2}$",
            "description": "MM/YY, this month or later"},
        "card_cvv": {"pattern": "^[0-9]{3,4}$", "description": "3 digits; 4 for American Express (34… or 37…)"},
        "cardholder_name": {"minLength": 1, "maxLength": 100, "pattern": billing_http::openapi::NOT_BLANK},
    });
    for (field, extra) in rules.as_object().into_iter().flatten() {
        if let Some(Value::Object(property)) = body["properties"].get_mut(field) {
            property.extend(extra.as_object().cloned().unwrap_or_default());
        }
    }
}

/// American Express cards (34…, 37…) have a 4-digit CVV, every other card 3.
fn card_kinds() -> Vec<Value> {
    vec![
        json!({"properties": {"card_number": {"pattern": "^3[47][0-9]{10,17}$"}, "card_cvv": {"pattern": "^[0-9]{4}$"}}}),
        json!({"properties": {
            "card_number": {"pattern": "^([0-24-9][0-9]|3[0-35689])[0-9]{10,17}$"},
            "card_cvv": {"pattern": "^[0-9]{3}$"},
        }}),
    ]
}
