//! The payment service's side of the attacker's review: its configuration refuses published keys when deployed.

use std::path::Path;

use billing_testkit::process;

#[test]
fn check_config_refuses_every_published_key_and_secret_in_staging_and_production() {
    let binary = Path::new(env!("CARGO_BIN_EXE_payment-service"));
    // The payment service holds no private key: the public key is what would let forged tokens in.
    process::assert_deployed_config_refuses_published_values(
        binary,
        &[
            "JWT_PUBLIC_KEY",
            "WEBHOOK_SECRETS",
            "INTERNAL_SUB_TO_PAY_SECRETS",
            "INTERNAL_PAY_TO_SUB_SECRETS",
            "GATEWAY_WEBHOOK_SECRETS",
            "PG_PASSWORD",
        ],
    );
    for env in ["staging", "production"] {
        let mut vars = process::deployed_env(env);
        vars.retain(|(k, _)| k != "REDIS_PASSWORD");
        let (ok, out) = process::check_config(binary, &vars);
        assert!(!ok && out.contains("REDIS_PASSWORD"), "{env} without a Redis password: {out}");
    }
}
