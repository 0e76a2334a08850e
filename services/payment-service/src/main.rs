//! `payment-service serve | worker | migrate | seed | check-config`

fn main() -> std::process::ExitCode {
    billing_runtime::main::<payment_service::PaymentService>()
}
