//! Typed settings of one service process, validated as a whole at boot.

use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::loader::split_list;
use crate::{ConfigError, Layers, Loader, Secret};

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Staging,
    Production,
    Test,
}

impl AppEnv {
    /// The name used in `APP_ENV` and in the file name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
            Self::Test => "test",
        }
    }

    /// Staging and production: real money, real secrets, strict validation.
    pub fn is_deployed(self) -> bool {
        matches!(self, Self::Staging | Self::Production)
    }
}

impl FromStr for AppEnv {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Self::Development),
            "staging" => Ok(Self::Staging),
            "production" => Ok(Self::Production),
            "test" => Ok(Self::Test),
            other => Err(ConfigError::new(
                "APP_ENV",
                format!("unknown environment {other:?} (development, staging, production or test)"),
            )),
        }
    }
}

/// Which of the two services a process belongs to; it picks the port, the database and the keys it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Subscription,
    Payment,
}

impl ServiceKind {
    /// The service name used in logs, health answers and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Subscription => "subscription-service",
            Self::Payment => "payment-service",
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            Self::Subscription => "SUBSCRIPTION",
            Self::Payment => "PAYMENT",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (staging, production).
    Json,
    /// Human-readable single lines (development, test).
    Compact,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// An `EnvFilter` directive such as `info,billing=debug`.
    pub filter: String,
    pub format: LogFormat,
    /// One successful request in this many gets an access-log line (1: every one). Server errors and slow
    /// requests are always logged.
    pub access_sample: u32,
}

/// The HTTP server of this service.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    /// Exact origins allowed by CORS; `*` (development only) allows any.
    pub cors_allowed_origins: Vec<String>,
    pub shutdown_timeout: Duration,
}

/// This service's PostgreSQL database and pool.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret<String>,
    pub pool_max_size: usize,
    /// How long a request waits for a pooled connection before failing with 503.
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
    /// Apply pending migrations when `serve` starts (development and test only).
    pub migrate_on_start: bool,
}

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: Secret<String>,
    /// Prepended to every key this process touches (tests use one prefix per test).
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

/// Base URLs of both services, for calls between them.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub subscription_url: String,
    pub payment_url: String,
}

/// JWT issuing and verification.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    /// Base64 PKCS#8 DER Ed25519 private key; only the subscription service holds it.
    pub private_key: Option<Secret<String>>,
    /// Base64 DER (SubjectPublicKeyInfo) Ed25519 public key.
    pub public_key: String,
}

/// HMAC secrets, each a list for rotation: the first signs, every one verifies.
#[derive(Debug, Clone)]
pub struct SigningSecrets {
    /// Payment service → subscription service webhooks.
    pub webhook: Vec<Secret<String>>,
    /// Internal calls from the subscription service to the payment service.
    pub internal_sub_to_pay: Vec<Secret<String>>,
    /// Internal calls from the payment service to the subscription service.
    pub internal_pay_to_sub: Vec<Secret<String>>,
    /// Events from the payment gateway (payment service only).
    pub gateway_webhook: Vec<Secret<String>>,
}

/// The payment gateway the payment service calls over HTTP (Stripe's API shape; the simulator in development).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Base URL of the gateway's API, without a trailing slash.
    pub url: String,
    /// The secret API key sent as `Authorization: Bearer …`.
    pub api_key: Secret<String>,
    /// How long one call may take before its outcome is treated as unknown.
    pub timeout: Duration,
}

/// Limits on guarded routes, and whose word about the client's address is trusted.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Sign-ups per client address per hour.
    pub registrations_per_hour: u64,
    /// Login attempts per email and client address per 15 minutes (a success clears them).
    pub login_attempts_per_15_min: u64,
    /// Peers (load balancers) whose `X-Forwarded-For` names the client; anyone else's header is ignored.
    pub trusted_proxies: Vec<crate::Cidr>,
}

/// The billing cycle's timing.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Dunning retries after an invoice's due time, increasing (default 1, 3, 5 and 7 days).
    pub dunning_offsets: Vec<chrono::Duration>,
    /// How often the worker looks for renewals, retries, trial ends and expiries.
    pub tick_every: Duration,
}

/// Everything one service process needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub service: ServiceKind,
    pub debug: bool,
    pub log: LogSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub services: ServiceSettings,
    pub jwt: JwtSettings,
    pub signing: SigningSecrets,
    /// The payment gateway (payment service only).
    pub gateway: Option<GatewaySettings>,
    pub billing: BillingSettings,
    pub limits: LimitSettings,
    /// Multiplies every queue delay and visibility timeout (tests run retries in milliseconds; 1 elsewhere).
    pub queue_time_scale: f64,
    /// The clock can be advanced through `/v1/admin/clock` (test environment only).
    pub test_clock: bool,
}

/// Keys whose values are secrets: never printed, and refused in staging/production when weak.
pub(crate) fn is_secret_key(key: &str) -> bool {
    key.ends_with("_SECRET") || key.ends_with("_SECRETS") || key == "JWT_PRIVATE_KEY" || key.ends_with("_PASSWORD")
}

/// Keys whose development and test values are published in this repository, so staging and production refuse
/// them: every secret, and the public JWT key (its private half is in `development.env` and `test.env`, so a
/// service trusting it would accept tokens anyone can mint).
pub(crate) fn is_published_value_key(key: &str) -> bool {
    is_secret_key(key) || key == "JWT_PUBLIC_KEY" || key == "GATEWAY_API_KEY"
}

const MIN_SECRET_BYTES: usize = 32;

impl Settings {
    /// Loads and validates the settings of `service` from the real process environment.
    pub fn load(service: ServiceKind) -> Result<Self, ConfigError> {
        let loader = Loader::from_process_env()?;
        let env = loader.selected_env()?;
        Self::from_layers(&loader.load(env)?, service)
    }

    /// Builds and validates the settings of `service` from already-loaded layers.
    pub fn from_layers(layers: &Layers, service: ServiceKind) -> Result<Self, ConfigError> {
        let r = Reader { layers };
        let app_env = layers.env();
        let deployed = app_env.is_deployed();
        let prefix = service.key_prefix();

        let debug = r.parse_with("DEBUG", parse_bool)?;
        if deployed && debug {
            return Err(ConfigError::new("DEBUG", format!("debug mode is not allowed in {}", app_env.as_str())));
        }

        let log = LogSettings {
            filter: r.required("LOG_LEVEL")?,
            format: r.parse_with("LOG_FORMAT", |v| match v {
                "json" => Ok(LogFormat::Json),
                "compact" => Ok(LogFormat::Compact),
                _ => Err("expected json or compact".to_owned()),
            })?,
            access_sample: match r.optional("ACCESS_LOG_SAMPLE")? {
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| ConfigError::new("ACCESS_LOG_SAMPLE", "a whole number from 1 to 1000000"))?,
                None => 1,
            },
        };

        let cors_allowed_origins = r.list("CORS_ALLOWED_ORIGINS")?;
        for origin in &cors_allowed_origins {
            validate_origin(origin, deployed).map_err(|reason| ConfigError::new("CORS_ALLOWED_ORIGINS", reason))?;
        }
        let http = HttpSettings {
            host: r.required("HTTP_HOST")?,
            port: r.parse_with(&format!("{prefix}_PORT"), parse_port)?,
            workers: r.parse_with("HTTP_WORKERS", |v| parse_range(v, 1, 64))?,
            cors_allowed_origins,
            shutdown_timeout: r.secs("HTTP_SHUTDOWN_TIMEOUT_SECS", 1, 300)?,
        };

        let db_key = format!("{prefix}_DATABASE_URL");
        let db_url = r.required(&db_key)?;
        validate_service_url(&db_url, &["postgres", "postgresql"], deployed)
            .map_err(|reason| ConfigError::new(&db_key, reason))?;
        r.check_url_password(&db_key, &db_url)?;
        let database = DatabaseSettings {
            url: Secret::new(db_url),
            pool_max_size: r.parse_with("DB_POOL_MAX_SIZE", |v| parse_range(v, 1, 64))?,
            acquire_timeout: r.millis("DB_ACQUIRE_TIMEOUT_MS")?,
            connect_timeout: r.millis("DB_CONNECT_TIMEOUT_MS")?,
            migrate_on_start: matches!(app_env, AppEnv::Development | AppEnv::Test),
        };

        if deployed {
            // A deployed Redis holds the queues and the rate limits: it is never open to whoever reaches it.
            r.secret("REDIS_PASSWORD")?;
        }
        let redis_url = r.required("REDIS_URL")?;
        validate_service_url(&redis_url, &["redis", "rediss"], deployed)
            .map_err(|reason| ConfigError::new("REDIS_URL", reason))?;
        if deployed && url_password(&redis_url).is_none() {
            return Err(ConfigError::new(
                "REDIS_URL",
                "has no password; staging and production use redis://:${REDIS_PASSWORD}@host:port/db",
            ));
        }
        r.check_url_password("REDIS_URL", &redis_url)?;
        let key_prefix = r.optional("REDIS_KEY_PREFIX")?.unwrap_or_default();
        if key_prefix.chars().any(|c| c.is_whitespace() || c == '{' || c == '}') {
            return Err(ConfigError::new("REDIS_KEY_PREFIX", "must not contain whitespace or braces"));
        }
        let redis = RedisSettings {
            url: Secret::new(redis_url),
            key_prefix,
            connect_timeout: r.millis("REDIS_CONNECT_TIMEOUT_MS")?,
            response_timeout: r.millis("REDIS_RESPONSE_TIMEOUT_MS")?,
        };

        let services = ServiceSettings {
            subscription_url: r.http_url("SUBSCRIPTION_SERVICE_URL")?,
            payment_url: r.http_url("PAYMENT_SERVICE_URL")?,
        };

        let jwt = JwtSettings {
            issuer: r.required("JWT_ISSUER")?,
            audience: r.required("JWT_AUDIENCE")?,
            ttl: r.secs("JWT_TTL_SECS", 60, 86_400)?,
            private_key: match service {
                ServiceKind::Subscription => Some(r.secret("JWT_PRIVATE_KEY")?),
                // The payment service verifies tokens but must not be able to issue them.
                ServiceKind::Payment => None,
            },
            public_key: r.published("JWT_PUBLIC_KEY")?,
        };

        let signing = SigningSecrets {
            webhook: r.secrets("WEBHOOK_SECRETS")?,
            internal_sub_to_pay: r.secrets("INTERNAL_SUB_TO_PAY_SECRETS")?,
            internal_pay_to_sub: r.secrets("INTERNAL_PAY_TO_SUB_SECRETS")?,
            gateway_webhook: match service {
                ServiceKind::Payment => r.secrets("GATEWAY_WEBHOOK_SECRETS")?,
                ServiceKind::Subscription => Vec::new(),
            },
        };

        let gateway = match service {
            ServiceKind::Payment => Some(r.gateway()?),
            ServiceKind::Subscription => None,
        };

        let billing = BillingSettings {
            dunning_offsets: r.parse_with("DUNNING_RETRY_OFFSETS", parse_offsets)?,
            tick_every: r.secs("BILLING_TICK_SECS", 1, 3600)?,
        };

        let limits = LimitSettings {
            registrations_per_hour: r
                .parse_with("RATE_LIMIT_REGISTRATIONS_PER_HOUR", |v| parse_range(v, 1, 1_000_000))?,
            login_attempts_per_15_min: r
                .parse_with("RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN", |v| parse_range(v, 1, 1_000_000))?,
            trusted_proxies: r
                .list("TRUSTED_PROXIES")?
                .iter()
                .map(|c| c.parse())
                .collect::<Result<_, String>>()
                .map_err(|reason| ConfigError::new("TRUSTED_PROXIES", reason))?,
        };

        let queue_time_scale = match r.optional("QUEUE_TIME_SCALE")? {
            Some(v) => parse_range(&v, 0.001, 1.0).map_err(|reason| ConfigError::new("QUEUE_TIME_SCALE", reason))?,
            None => 1.0,
        };
        if app_env != AppEnv::Test && queue_time_scale != 1.0 {
            return Err(ConfigError::new("QUEUE_TIME_SCALE", "only the test environment may scale queue delays"));
        }
        let test_clock = match r.optional("TEST_CLOCK")? {
            Some(v) => parse_bool(&v).map_err(|reason| ConfigError::new("TEST_CLOCK", reason))?,
            None => false,
        };
        if test_clock && app_env != AppEnv::Test {
            return Err(ConfigError::new(
                "TEST_CLOCK",
                "a clock that can be moved is only allowed in the test environment",
            ));
        }

        Ok(Self {
            app_env,
            service,
            debug,
            log,
            http,
            database,
            redis,
            services,
            jwt,
            signing,
            gateway,
            billing,
            limits,
            queue_time_scale,
            test_clock,
        })
    }
}

struct Reader<'a> {
    layers: &'a Layers,
}

impl Reader<'_> {
    fn optional(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.layers.get(key)?.map(|v| v.trim().to_owned()))
    }

    fn required(&self, key: &str) -> Result<String, ConfigError> {
        match self.optional(key)? {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(ConfigError::new(key, "is empty")),
            None => Err(ConfigError::new(key, "is not set")),
        }
    }

    fn parse_with<T>(&self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        let raw = self.required(key)?;
        parse(&raw).map_err(|reason| ConfigError::new(key, reason))
    }

    fn millis(&self, key: &str) -> Result<Duration, ConfigError> {
        self.parse_with(key, |v| parse_range(v, 1, 60_000)).map(Duration::from_millis)
    }

    fn secs(&self, key: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.parse_with(key, |v| parse_range(v, min, max)).map(Duration::from_secs)
    }

    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self.optional(key)?.map(|v| split_list(&v).map(str::to_owned).collect()).unwrap_or_default())
    }

    fn http_url(&self, key: &str) -> Result<String, ConfigError> {
        let raw = self.required(key)?;
        let url = Url::parse(&raw).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::new(key, "expected an http(s) URL with a host"));
        }
        Ok(raw.trim_end_matches('/').to_owned())
    }

    /// The gateway's address and key. Deployed environments refuse a gateway on this machine and a test-mode key
    /// (`sk_test_…`, which the simulator takes) unless `GATEWAY_ALLOW_SIMULATOR=true` says so on purpose.
    fn gateway(&self) -> Result<GatewaySettings, ConfigError> {
        let url = self.http_url("GATEWAY_URL")?;
        let api_key = self.secret("GATEWAY_API_KEY")?;
        let allow_simulator = match self.optional("GATEWAY_ALLOW_SIMULATOR")? {
            Some(v) => parse_bool(&v).map_err(|reason| ConfigError::new("GATEWAY_ALLOW_SIMULATOR", reason))?,
            None => false,
        };
        if self.layers.env().is_deployed() && !allow_simulator {
            let host = Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
            if is_local_host(&host) || !url.starts_with("https://") {
                return Err(ConfigError::new(
                    "GATEWAY_URL",
                    "staging and production call a real gateway over https (set GATEWAY_ALLOW_SIMULATOR=true to \
                     use the simulator on purpose)",
                ));
            }
            if api_key.expose().starts_with("sk_test_") {
                return Err(ConfigError::new(
                    "GATEWAY_API_KEY",
                    "is a test-mode key; staging and production need a live key (or GATEWAY_ALLOW_SIMULATOR=true)",
                ));
            }
        }
        let timeout = match self.optional("GATEWAY_TIMEOUT_MS")? {
            Some(v) => Duration::from_millis(
                parse_range(&v, 100, 120_000).map_err(|reason| ConfigError::new("GATEWAY_TIMEOUT_MS", reason))?,
            ),
            None => Duration::from_secs(10),
        };
        Ok(GatewaySettings { url, api_key, timeout })
    }

    fn secret(&self, key: &str) -> Result<Secret<String>, ConfigError> {
        let value = self.required(key)?;
        self.check_secret(key, &value)?;
        Ok(Secret::new(value))
    }

    fn secrets(&self, key: &str) -> Result<Vec<Secret<String>>, ConfigError> {
        let raw = self.required(key)?;
        let values: Vec<&str> = split_list(&raw).collect();
        if values.is_empty() {
            return Err(ConfigError::new(key, "needs at least one secret"));
        }
        values.into_iter().map(|v| self.check_secret(key, v).map(|()| Secret::new(v.to_owned()))).collect()
    }

    /// A value that is not secret but must not be one of the repository's development or test values when
    /// deployed (the JWT public key).
    fn published(&self, key: &str) -> Result<String, ConfigError> {
        let value = self.required(key)?;
        self.refuse_published(key, &value)?;
        Ok(value)
    }

    fn check_secret(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        if !self.layers.env().is_deployed() {
            return Ok(());
        }
        if value.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(key, format!("a secret must be at least {MIN_SECRET_BYTES} bytes")));
        }
        self.refuse_published(key, value)
    }

    fn refuse_published(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        if self.layers.env().is_deployed() && (self.layers.is_development_secret(value) || value.contains("dev-only")) {
            return Err(ConfigError::new(
                key,
                "is a development or test value published in this repository; generate one with \
                 `scripts/env-manager.sh -e <env> secrets`",
            ));
        }
        Ok(())
    }

    /// The password inside a database or Redis URL (set directly, not through `PG_PASSWORD`) follows the same rule.
    fn check_url_password(&self, key: &str, url: &str) -> Result<(), ConfigError> {
        match url_password(url) {
            Some(password) => self.refuse_published(key, &password),
            None => Ok(()),
        }
    }
}

/// `1d,3d,5d,7d`: increasing offsets with a unit (s, m, h or d), at most ten; `none` for no retries.
fn parse_offsets(v: &str) -> Result<Vec<chrono::Duration>, String> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut offsets = Vec::new();
    for item in split_list(v) {
        let (number, unit) = item.split_at(item.len().saturating_sub(1));
        let n: i64 = number.parse().map_err(|_| format!("expected offsets like 1d,3d,5d,7d, got {item:?}"))?;
        let offset = match unit {
            "s" => chrono::Duration::seconds(n),
            "m" => chrono::Duration::minutes(n),
            "h" => chrono::Duration::hours(n),
            "d" => chrono::Duration::days(n),
            _ => return Err(format!("{item:?} needs a unit: s, m, h or d")),
        };
        if n <= 0 || n > 100_000 || offsets.last().is_some_and(|last| *last >= offset) {
            return Err("offsets must be positive and increasing".to_owned());
        }
        offsets.push(offset);
    }
    if offsets.is_empty() || offsets.len() > 10 {
        return Err("expected 1 to 10 offsets, or none".to_owned());
    }
    Ok(offsets)
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn parse_port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("expected a port 1-65535, got {v:?}")),
        Ok(port) => Ok(port),
    }
}

fn parse_range<T: FromStr + PartialOrd + Copy + std::fmt::Display>(v: &str, min: T, max: T) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected an integer from {min} to {max}, got {v:?}")),
    }
}

/// The percent-decoded password of a URL, when it has one.
fn url_password(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    let password = url.password().filter(|p| !p.is_empty())?;
    Some(percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned())
}

fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.ends_with(".localhost")
        || host.starts_with("127.")
        || host == "::1"
        || host == "0.0.0.0"
}

/// Checks a database or Redis URL; deployed environments must not point at this machine.
fn validate_service_url(raw: &str, schemes: &[&str], deployed: bool) -> Result<(), String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("expected a {} URL", schemes.join(" or ")));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
    if deployed && is_local_host(host) {
        return Err(format!("points at {host}; staging and production need the real server's address"));
    }
    Ok(())
}

fn validate_origin(origin: &str, deployed: bool) -> Result<(), String> {
    if origin == "*" {
        return if deployed { Err("`*` is not allowed in staging or production".to_owned()) } else { Ok(()) };
    }
    let url = Url::parse(origin).map_err(|_| format!("{origin:?} is not an origin"))?;
    let is_origin = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && !origin.ends_with('/')
        && url.query().is_none();
    if is_origin { Ok(()) } else { Err(format!("{origin:?} is not an origin (scheme://host[:port])")) }
}
