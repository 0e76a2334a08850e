//! The configuration loader against real files: layering, substitution and every validation rule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use billing_config::{AppEnv, ConfigError, Loader, LogFormat, ServiceKind, Settings};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn repo_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/environments")
}

/// Strong, unique values for everything staging/production must get from the process environment.
fn deployed_env(env: &str) -> HashMap<String, String> {
    vars(&[
        ("APP_ENV", env),
        ("PG_HOST", "db.internal"),
        ("PG_PASSWORD", "s3cret"),
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PASSWORD", "4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"),
        ("SUBSCRIPTION_HOST", "subscription.internal"),
        ("PAYMENT_HOST", "payment.internal"),
        ("JWT_PRIVATE_KEY", "MC4CAQAwBQYDK2VwBCIEIGVuT8q2o6pBv8gCw5bqg7y0dXz4n9nB2lP0Kk1mQwRt"),
        ("JWT_PUBLIC_KEY", "MCowBQYDK2VwAyEAq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c="),
        ("WEBHOOK_SECRETS", "0f3c9a7e5b1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e"),
        ("INTERNAL_SUB_TO_PAY_SECRETS", "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"),
        ("INTERNAL_PAY_TO_SUB_SECRETS", "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"),
        ("GATEWAY_WEBHOOK_SECRETS", "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3"),
        ("GATEWAY_URL", "https://api.gateway.example"),
        ("GATEWAY_API_KEY", "sk_live_5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"),
    ])
}

fn load_repo(env: AppEnv, process: HashMap<String, String>, service: ServiceKind) -> Result<Settings, ConfigError> {
    let loader = Loader::new(repo_config_dir(), process);
    Settings::from_layers(&loader.load(env)?, service)
}

fn expect_err(result: Result<Settings, ConfigError>) -> ConfigError {
    match result {
        Ok(_) => panic!("expected a configuration error"),
        Err(e) => e,
    }
}

#[test]
fn environment_file_overrides_base_and_process_overrides_both() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "base.env", "A=base\nB=base\nC=base\n");
    write(dir.path(), "test.env", "APP_ENV=test\nB=file\nC=file\n");
    let layers =
        Loader::new(dir.path(), vars(&[("C", "process")])).load(AppEnv::Test).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(layers.get("A").ok().flatten().as_deref(), Some("base"));
    assert_eq!(layers.get("B").ok().flatten().as_deref(), Some("file"));
    assert_eq!(layers.get("C").ok().flatten().as_deref(), Some("process"));
    assert_eq!(layers.get("MISSING").ok().flatten(), None);
}

#[test]
fn substitution_uses_the_merged_layers_and_defaults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "base.env", "URL=http://${HOST}:${PORT:-80}/x\nHOST=base-host\nLIT='${HOST}'\nDOLLAR=a$$b\n");
    write(dir.path(), "test.env", "APP_ENV=test\nHOST=file-host\nEMPTY=\nE2=${EMPTY:-fallback}\n");
    let layers = Loader::new(dir.path(), vars(&[("PORT", "8080")])).load(AppEnv::Test);
    let layers = layers.unwrap_or_else(|e| panic!("{e}"));
    let get = |k: &str| layers.get(k).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get("URL").as_deref(), Some("http://file-host:8080/x"), "later layers feed substitution");
    assert_eq!(get("LIT").as_deref(), Some("${HOST}"), "single quotes are literal");
    assert_eq!(get("DOLLAR").as_deref(), Some("a$b"), "$$ escapes a dollar");
    assert_eq!(get("E2").as_deref(), Some("fallback"), ":- also covers empty values");
}

#[test]
fn process_values_are_taken_literally() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "base.env", "");
    write(dir.path(), "test.env", "APP_ENV=test\n");
    let layers = Loader::new(dir.path(), vars(&[("PASSWORD", "p${x}")])).load(AppEnv::Test);
    let got = layers.map(|l| l.get("PASSWORD"));
    assert_eq!(got.ok().and_then(Result::ok).flatten().as_deref(), Some("p${x}"));
}

#[test]
fn undefined_reference_and_cycles_name_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "base.env", "A=${NOPE}\nX=${Y}\nY=${X}\n");
    write(dir.path(), "test.env", "APP_ENV=test\n");
    let layers = Loader::new(dir.path(), HashMap::new()).load(AppEnv::Test).unwrap_or_else(|e| panic!("{e}"));
    let err = layers.get("A").err().unwrap_or_else(|| panic!("undefined reference accepted"));
    assert_eq!(err.key, "A");
    assert!(err.reason.contains("${NOPE}"), "{err}");
    let err = layers.get("X").err().unwrap_or_else(|| panic!("cycle accepted"));
    assert_eq!(err.key, "X");
    assert!(err.reason.contains("cycle"), "{err}");
}

#[test]
fn app_env_must_match_the_file_loaded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "base.env", "");
    write(dir.path(), "staging.env", "APP_ENV=production\n");
    write(dir.path(), "test.env", "NO_APP_ENV=1\n");
    let loader = Loader::new(dir.path(), HashMap::new());
    let err = loader.load(AppEnv::Staging).err().unwrap_or_else(|| panic!("mismatch accepted"));
    assert_eq!(err.key, "APP_ENV");
    let err = loader.load(AppEnv::Test).err().unwrap_or_else(|| panic!("missing APP_ENV accepted"));
    assert_eq!(err.key, "APP_ENV");
    let err = loader.load(AppEnv::Development).err().unwrap_or_else(|| panic!("missing file accepted"));
    assert_eq!(err.key, "development.env");

    write(dir.path(), "test.env", "APP_ENV=test\n");
    let loader = Loader::new(dir.path(), vars(&[("APP_ENV", "staging")]));
    let err = loader.load(AppEnv::Test).err().unwrap_or_else(|| panic!("process/file mismatch accepted"));
    assert_eq!(err.key, "APP_ENV");
}

#[test]
fn selected_env_comes_from_app_env_and_defaults_to_development() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Loader::new(dir.path(), HashMap::new()).selected_env().ok(), Some(AppEnv::Development));
    assert_eq!(Loader::new(dir.path(), vars(&[("APP_ENV", "test")])).selected_env().ok(), Some(AppEnv::Test));
    let err = Loader::new(dir.path(), vars(&[("APP_ENV", "prod")])).selected_env().err();
    assert_eq!(err.map(|e| e.key).as_deref(), Some("APP_ENV"));
}

#[test]
fn development_and_test_files_load_without_any_setup() {
    for env in [AppEnv::Development, AppEnv::Test] {
        for service in [ServiceKind::Subscription, ServiceKind::Payment] {
            let settings = load_repo(env, HashMap::new(), service).unwrap_or_else(|e| panic!("{env:?}: {e}"));
            assert_eq!(settings.app_env, env);
            assert_eq!(settings.log.format, LogFormat::Compact);
            assert!(settings.database.migrate_on_start);
        }
    }
    let sub = load_repo(AppEnv::Development, HashMap::new(), ServiceKind::Subscription);
    let sub = sub.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sub.http.port, 8001);
    assert!(sub.database.url.expose().ends_with("/billing_subscription"));
    assert!(sub.jwt.private_key.is_some());
    let pay = load_repo(AppEnv::Development, HashMap::new(), ServiceKind::Payment);
    let pay = pay.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pay.http.port, 8002);
    assert!(pay.database.url.expose().ends_with("/billing_payment"));
    assert!(pay.jwt.private_key.is_none(), "the payment service can verify tokens but never issue them");
}

#[test]
fn production_passes_with_proper_values() {
    for env in ["staging", "production"] {
        let app_env: AppEnv = env.parse().unwrap_or_else(|e| panic!("{e}"));
        for service in [ServiceKind::Subscription, ServiceKind::Payment] {
            let settings = load_repo(app_env, deployed_env(env), service).unwrap_or_else(|e| panic!("{env}: {e}"));
            assert_eq!(settings.log.format, LogFormat::Json);
            assert!(!settings.debug);
            assert!(!settings.database.migrate_on_start);
            assert_eq!(
                settings.database.url.expose(),
                &format!(
                    "postgres://billing:s3cret@db.internal:5432/{}",
                    if service == ServiceKind::Subscription { "billing_subscription" } else { "billing_payment" }
                )
            );
        }
    }
}

#[test]
fn production_refuses_development_secrets_naming_the_key() {
    let dev = Loader::new(repo_config_dir(), HashMap::new()).load(AppEnv::Development);
    let dev = dev.unwrap_or_else(|e| panic!("{e}"));
    for key in ["JWT_PRIVATE_KEY", "WEBHOOK_SECRETS", "INTERNAL_SUB_TO_PAY_SECRETS", "INTERNAL_PAY_TO_SUB_SECRETS"] {
        let mut process = deployed_env("production");
        let value = dev.get(key).ok().flatten().unwrap_or_else(|| panic!("{key} missing in development.env"));
        process.insert(key.to_owned(), value);
        let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Subscription));
        assert_eq!(err.key, key);
        assert!(err.reason.contains("development or test value"), "{err}");
    }
    // A rotated list is refused when any member is a development secret.
    let mut process = deployed_env("production");
    let test_secret = "dev-only-insecure-test-gateway-webhook-0000001";
    process.insert("GATEWAY_WEBHOOK_SECRETS".into(), format!("{},{test_secret}", "9".repeat(40)));
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Payment));
    assert_eq!(err.key, "GATEWAY_WEBHOOK_SECRETS");
}

/// Every value the development and test files publish (secrets, passwords, the JWT key pairs) is refused by
/// staging and production for both services, naming the key; the database password is refused inside its URL.
#[test]
fn deployed_environments_refuse_every_published_development_and_test_value() {
    for published in [AppEnv::Development, AppEnv::Test] {
        let layers = Loader::new(repo_config_dir(), HashMap::new()).load(published).unwrap_or_else(|e| panic!("{e}"));
        for env in [AppEnv::Staging, AppEnv::Production] {
            for service in [ServiceKind::Subscription, ServiceKind::Payment] {
                for key in [
                    "JWT_PUBLIC_KEY",
                    "JWT_PRIVATE_KEY",
                    "WEBHOOK_SECRETS",
                    "INTERNAL_SUB_TO_PAY_SECRETS",
                    "INTERNAL_PAY_TO_SUB_SECRETS",
                    "GATEWAY_WEBHOOK_SECRETS",
                    "PG_PASSWORD",
                ] {
                    if (key == "JWT_PRIVATE_KEY" && service == ServiceKind::Payment)
                        || (key == "GATEWAY_WEBHOOK_SECRETS" && service == ServiceKind::Subscription)
                    {
                        continue; // a key this service never reads
                    }
                    let value = layers.get(key).ok().flatten().unwrap_or_else(|| panic!("{key} in {published:?}"));
                    let mut process = deployed_env(env.as_str());
                    process.insert(key.to_owned(), value);
                    let err = expect_err(load_repo(env, process, service));
                    let expected_key = match (key, service) {
                        ("PG_PASSWORD", ServiceKind::Subscription) => "SUBSCRIPTION_DATABASE_URL",
                        ("PG_PASSWORD", ServiceKind::Payment) => "PAYMENT_DATABASE_URL",
                        _ => key,
                    };
                    assert_eq!(err.key, expected_key, "{published:?} {key} in {env:?} for {service:?}: {err}");
                    assert!(err.reason.contains("development or test value"), "{err}");
                }
            }
        }
    }
}

#[test]
fn deployed_redis_needs_a_password() {
    let mut process = deployed_env("production");
    process.remove("REDIS_PASSWORD");
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Payment));
    assert_eq!(err, ConfigError::new("REDIS_PASSWORD", "is not set"));
    let mut process = deployed_env("staging");
    process.insert("REDIS_PASSWORD".into(), String::new());
    let err = expect_err(load_repo(AppEnv::Staging, process, ServiceKind::Subscription));
    assert_eq!(err.key, "REDIS_PASSWORD");
    let mut process = deployed_env("production");
    process.insert("REDIS_URL".into(), "redis://cache.internal:6379/0".into());
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Subscription));
    assert_eq!(err.key, "REDIS_URL");
    assert!(err.reason.contains("password"), "{err}");
    let settings = load_repo(AppEnv::Production, deployed_env("production"), ServiceKind::Payment);
    let settings = settings.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        settings.redis.url.expose(),
        "redis://:4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4@cache.internal:6379/0"
    );
}

#[test]
fn production_refuses_short_secrets() {
    let mut process = deployed_env("production");
    process.insert("WEBHOOK_SECRETS".into(), "short-but-unique-secret".into());
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Subscription));
    assert_eq!(err.key, "WEBHOOK_SECRETS");
    assert!(err.reason.contains("32 bytes"), "{err}");
}

#[test]
fn production_refuses_missing_secrets() {
    let mut process = deployed_env("production");
    process.remove("INTERNAL_PAY_TO_SUB_SECRETS");
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Payment));
    assert_eq!(err, ConfigError::new("INTERNAL_PAY_TO_SUB_SECRETS", "is not set"));
}

#[test]
fn production_refuses_debug_mode() {
    let mut process = deployed_env("staging");
    process.insert("DEBUG".into(), "true".into());
    let err = expect_err(load_repo(AppEnv::Staging, process, ServiceKind::Subscription));
    assert_eq!(err.key, "DEBUG");
}

#[test]
fn production_refuses_local_database_and_redis() {
    for (key, value) in [("PG_HOST", "localhost"), ("PG_HOST", "127.0.0.1"), ("PG_HOST", "[::1]")] {
        let mut process = deployed_env("production");
        process.insert(key.into(), value.into());
        let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Subscription));
        assert_eq!(err.key, "SUBSCRIPTION_DATABASE_URL", "{value}");
    }
    let mut process = deployed_env("production");
    process.insert("REDIS_URL".into(), "redis://localhost:6379/0".into());
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Payment));
    assert_eq!(err.key, "REDIS_URL");
}

#[test]
fn production_refuses_a_wildcard_cors_origin() {
    let mut process = deployed_env("production");
    process.insert("CORS_ALLOWED_ORIGINS".into(), "*".into());
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Payment));
    assert_eq!(err.key, "CORS_ALLOWED_ORIGINS");
}

#[test]
fn production_without_addresses_names_the_missing_variable() {
    let mut process = deployed_env("production");
    process.remove("PG_HOST");
    let err = expect_err(load_repo(AppEnv::Production, process, ServiceKind::Subscription));
    assert_eq!(err.key, "SUBSCRIPTION_DATABASE_URL");
    assert!(err.reason.contains("${PG_HOST}"), "{err}");
}

#[test]
fn typed_values_are_validated_with_the_key_named() {
    let cases: &[(&str, &str)] = &[
        ("DEBUG", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("SUBSCRIPTION_PORT", "0"),
        ("SUBSCRIPTION_PORT", "70000"),
        ("HTTP_WORKERS", "0"),
        ("DB_POOL_MAX_SIZE", "500"),
        ("DB_ACQUIRE_TIMEOUT_MS", "-1"),
        ("REDIS_RESPONSE_TIMEOUT_MS", "soon"),
        ("SUBSCRIPTION_DATABASE_URL", "mysql://x@y/z"),
        ("SUBSCRIPTION_DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://cache:6379"),
        ("REDIS_KEY_PREFIX", "has space"),
        ("PAYMENT_SERVICE_URL", "ftp://pay"),
        ("CORS_ALLOWED_ORIGINS", "http://ok.example,https://bad.example/path"),
        ("JWT_TTL_SECS", "5"),
        ("JWT_ISSUER", ""),
        ("LOG_LEVEL", ""),
    ];
    for (key, value) in cases {
        let err = expect_err(load_repo(AppEnv::Test, vars(&[(key, value)]), ServiceKind::Subscription));
        assert_eq!(&err.key, key, "{key}={value:?} gave {err}");
    }
}

#[test]
fn errors_render_as_one_line_naming_the_key() {
    let err = ConfigError::new("REDIS_URL", "expected a redis or rediss URL");
    let line = err.to_string();
    assert_eq!(line, "REDIS_URL: expected a redis or rediss URL");
    assert!(!line.contains('\n'));
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let settings = load_repo(AppEnv::Production, deployed_env("production"), ServiceKind::Subscription);
    let settings = settings.unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{settings:?}");
    for secret in ["s3cret", "0f3c9a7e5b1d", "MC4CAQAwBQYDK2VwBCIEIGVuT8q2"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn only_tests_may_scale_queue_delays() {
    let test = load_repo(AppEnv::Test, HashMap::new(), ServiceKind::Payment).unwrap_or_else(|e| panic!("{e}"));
    assert!((test.queue_time_scale - 0.01).abs() < f64::EPSILON);
    let dev = load_repo(AppEnv::Development, vars(&[("QUEUE_TIME_SCALE", "0.5")]), ServiceKind::Payment);
    assert_eq!(expect_err(dev).key, "QUEUE_TIME_SCALE");
    let prod = load_repo(AppEnv::Production, deployed_env("production"), ServiceKind::Payment)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!((prod.queue_time_scale - 1.0).abs() < f64::EPSILON);
}

#[test]
fn only_tests_may_move_the_clock() {
    let ok = load_repo(AppEnv::Test, vars(&[("TEST_CLOCK", "true")]), ServiceKind::Subscription)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.test_clock);
    for env in [AppEnv::Development, AppEnv::Production] {
        let mut process = if env == AppEnv::Production { deployed_env("production") } else { HashMap::new() };
        process.insert("TEST_CLOCK".into(), "true".into());
        assert_eq!(expect_err(load_repo(env, process, ServiceKind::Subscription)).key, "TEST_CLOCK", "{env:?}");
    }
}

#[test]
fn dunning_offsets_default_to_days_and_are_validated() {
    let base =
        load_repo(AppEnv::Development, HashMap::new(), ServiceKind::Subscription).unwrap_or_else(|e| panic!("{e}"));
    let days: Vec<i64> = base.billing.dunning_offsets.iter().map(|d| d.num_days()).collect();
    assert_eq!(days, vec![1, 3, 5, 7]);
    let custom = load_repo(AppEnv::Test, vars(&[("DUNNING_RETRY_OFFSETS", "30s, 2m,1h")]), ServiceKind::Subscription)
        .unwrap_or_else(|e| panic!("{e}"));
    let secs: Vec<i64> = custom.billing.dunning_offsets.iter().map(|d| d.num_seconds()).collect();
    assert_eq!(secs, vec![30, 120, 3600]);
    let none = load_repo(AppEnv::Test, vars(&[("DUNNING_RETRY_OFFSETS", "none")]), ServiceKind::Subscription)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.billing.dunning_offsets.is_empty());
    for bad in ["3d,1d", "1x", "0d", "d", "1d,1d"] {
        let err =
            expect_err(load_repo(AppEnv::Test, vars(&[("DUNNING_RETRY_OFFSETS", bad)]), ServiceKind::Subscription));
        assert_eq!(err.key, "DUNNING_RETRY_OFFSETS", "{bad}");
    }
}

#[test]
fn production_samples_its_access_log_and_a_bad_rate_is_named() {
    let dev = load_repo(AppEnv::Development, HashMap::new(), ServiceKind::Payment).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dev.log.access_sample, 1, "development logs every request");
    let prod = load_repo(AppEnv::Production, deployed_env("production"), ServiceKind::Payment)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(prod.log.access_sample, 100);
    for bad in ["0", "-3", "often"] {
        let loaded = load_repo(AppEnv::Development, vars(&[("ACCESS_LOG_SAMPLE", bad)]), ServiceKind::Payment);
        assert_eq!(expect_err(loaded).key, "ACCESS_LOG_SAMPLE", "{bad}");
    }
}
