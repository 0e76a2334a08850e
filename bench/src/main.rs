//! `loadgen`: drives one hot path of a running subscription service (or of the Python peer, `--target peer`) with
//! N concurrent connections for a fixed time and prints throughput and the latency distribution: a Markdown table
//! row, or one JSON object with `--json` (what `bench/sidebyside.py` reads).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `GET /v1/health` (no authentication, no I/O).
    Health,
    /// `GET /v1/auth/me` (JWT verification + one indexed read of the user).
    AuthMe,
    /// `GET /v1/subscriptions/me` (JWT verification + one indexed read + the cached catalog).
    SubscriptionsMe,
    /// `GET /v1/usage/limits` (JWT + the subscription giving access + each counter).
    UsageLimits,
    /// `POST /v1/usage/use` with a fresh idempotency key each time (JWT + one indexed read + the Redis Lua
    /// check-and-increment).
    UsageUse,
    /// `POST /v1/auth/login` (an Argon2id check on the hashing threads; 503 when they are all busy).
    Login,
    /// Seed 002's mix, request by request: 70 % `subscriptions/me`, 20 % `usage/use`, 8 % `usage/limits`, 2 %
    /// logins.
    Mixed,
}

impl Scenario {
    fn route(self) -> (&'static str, &'static str) {
        match self {
            Self::Health => ("GET", "/v1/health"),
            Self::AuthMe => ("GET", "/v1/auth/me"),
            Self::SubscriptionsMe => ("GET", "/v1/subscriptions/me"),
            Self::UsageLimits => ("GET", "/v1/usage/limits"),
            Self::UsageUse => ("POST", "/v1/usage/use"),
            Self::Login => ("POST", "/v1/auth/login"),
            Self::Mixed => ("MIX", "seed 002"),
        }
    }

    /// The scenario of request number `n` (the mix spreads its shares over every hundred requests).
    fn nth(self, n: u64) -> Self {
        match (self, n % 100) {
            (Self::Mixed, 0..70) => Self::SubscriptionsMe,
            (Self::Mixed, 70..90) => Self::UsageUse,
            (Self::Mixed, 90..98) => Self::UsageLimits,
            (Self::Mixed, _) => Self::Login,
            (other, _) => other,
        }
    }
}

/// Who the requests are made as.
#[derive(Debug, Clone)]
struct Identity {
    token: String,
    email: String,
}

const BENCH_PASSWORD: &str = "bench pass 2026";

/// Request `scenario` as `who`.
fn request(client: &reqwest::Client, base: &str, scenario: Scenario, who: &Identity) -> reqwest::RequestBuilder {
    let (method, path) = scenario.route();
    let url = format!("{base}{path}");
    match scenario {
        Scenario::Health => client.get(url),
        Scenario::UsageUse => {
            // Both sides record the use under a key of its own, as an integration would send it.
            let body = json!({"feature_name": "api_calls", "delta": 1,
                "idempotency_key": uuid::Uuid::new_v4().simple().to_string()});
            client.post(url).bearer_auth(&who.token).json(&body)
        }
        Scenario::Login => client.post(url).json(&json!({"email": who.email, "password": BENCH_PASSWORD})),
        _ if method == "GET" => client.get(url).bearer_auth(&who.token),
        _ => client.get(url),
    }
}

/// Which implementation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// This project's subscription service: a user is registered and put on a bench trial plan.
    Ours,
    /// The FastAPI peer: HS256 tokens for its seeded user 1 (`bench/peer/`).
    Peer,
}

/// The peer's token secret (`../shared/peers/fastapi-min/app.py`).
const PEER_SECRET: &str = "bench-secret-bench-secret-bench!";

#[derive(Debug, Parser)]
struct Args {
    /// The subscription service.
    #[arg(long, default_value = "http://127.0.0.1:8101")]
    url: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "ours")]
    target: Target,
    /// Print one JSON object instead of a Markdown row.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of measurement (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// An administrator, used to lift the metered limit so the usage scenario measures accepted uses.
    #[arg(long, default_value = "admin@billing.local")]
    admin_email: String,
    #[arg(long, default_value = "dev-only-Admin-2026")]
    admin_password: String,
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// A fresh user on a trial of a bench-only trial plan whose api_calls limit is out of reach, so the usage
/// scenario measures accepted uses (the seed catalog is left as it is).
async fn prepare(client: &reqwest::Client, args: &Args) -> anyhow::Result<Identity> {
    let base = &args.url;
    let admin = post(
        client,
        format!("{base}/v1/auth/login"),
        None,
        json!({"email": args.admin_email, "password": args.admin_password}),
    )
    .await?;
    let admin = admin["data"]["access_token"].as_str().context("no admin token")?.to_owned();
    let plan = post(
        client,
        format!("{base}/v1/admin/plans"),
        Some(&admin),
        json!({"code": format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]), "name": "Bench trial",
               "price": "0", "currency": "USD", "billing_cycle": "monthly", "is_trial_plan": true, "trial_period_days": 30,
               "is_active": false, "features": {"api_calls": {"limit": 1_000_000_000_000_u64}}}),
    )
    .await?;
    let plan_id = plan["data"]["id"].as_i64().context("no plan id")?;
    // Inactive plans are not for sale: activate it just long enough to start the trial.
    let activate = |active: bool| {
        client
            .put(format!("{base}/v1/admin/plans/{plan_id}"))
            .bearer_auth(&admin)
            .json(&json!({"is_active": active}))
            .send()
    };
    activate(true).await?.error_for_status()?;
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let reg =
        post(client, format!("{base}/v1/auth/register"), None, json!({"email": email, "password": BENCH_PASSWORD}))
            .await?;
    let token = reg["data"]["access_token"].as_str().context("no token")?.to_owned();
    post(client, format!("{base}/v1/subscriptions/trial"), Some(&token), json!({"trial_plan_id": plan_id})).await?;
    activate(false).await?.error_for_status()?;
    Ok(Identity { token, email })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// An HS256 token for the peer's user 1, valid for a day.
fn peer_token() -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 86_400;
    let claims = json!({"sub": "1", "exp": exp});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(PEER_SECRET.as_bytes()),
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let who = match (args.target, args.scenario) {
        (_, Scenario::Health) => Identity { token: String::new(), email: String::new() },
        (Target::Ours, _) => prepare(&client, &args).await?,
        (Target::Peer, _) => Identity { token: peer_token()?, email: String::new() },
    };
    let (method, path) = args.scenario.route();
    let method_path = format!("{method} {path}");
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut workers = Vec::with_capacity(args.concurrency);
    let scenario = args.scenario;
    for worker in 0..args.concurrency {
        let (client, base, who) = (client.clone(), args.url.clone(), who.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0_u64;
            // Every answered request, the warm-up's too (what CPU counters see).
            let mut answered = 0_u64;
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            // Each connection starts at another place in the mix.
            let mut n = worker as u64 * 37;
            while Instant::now() < end {
                let started = Instant::now();
                let req = request(&client, &base, scenario.nth(n), &who);
                n += 1;
                let (status, retry_after) = match req.send().await {
                    Ok(res) => {
                        let status = res.status();
                        let retry_after = res
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        (if res.bytes().await.is_ok() { status.as_u16() } else { 0 }, retry_after)
                    }
                    Err(_) => (0, None),
                };
                // A well-behaved client: turned away busy, it comes back when told, not at once (a client that
                // retried at once would measure its own retry loop).
                if let (503, Some(secs)) = (status, retry_after) {
                    let back = Instant::now() + Duration::from_secs(secs);
                    tokio::time::sleep_until(back.min(end).into()).await;
                }
                let ok = (200..300).contains(&status);
                answered += u64::from(ok);
                if started >= warmup_end {
                    *statuses.entry(status).or_default() += 1;
                    if ok { latencies.push(started.elapsed()) } else { errors += 1 }
                }
            }
            (latencies, errors, answered, statuses)
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut answered) = (0, 0);
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for worker in workers {
        let (latencies, e, a, s) = worker.await?;
        all.extend(latencies);
        errors += e;
        answered += a;
        for (status, count) in s {
            *statuses.entry(status).or_default() += count;
        }
    }
    let statuses: serde_json::Map<String, Value> =
        statuses.into_iter().map(|(status, count)| (status.to_string(), json!(count))).collect();
    all.sort_unstable();
    let rps = all.len() as f64 / args.seconds as f64;
    if args.json {
        let max = all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
        let (p50, p90, p99) = (percentile(&all, 0.50), percentile(&all, 0.90), percentile(&all, 0.99));
        let p95 = percentile(&all, 0.95);
        let summary = json!({"route": method_path, "concurrency": args.concurrency, "requests": all.len(),
            "all_requests": answered, "rps": rps, "p50": p50, "p90": p90, "p95": p95, "p99": p99, "max": max,
            "errors": errors,
            "statuses": statuses});
        println!("{summary}");
        return Ok(());
    }
    println!(
        "| {method_path} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {errors} |",
        args.concurrency,
        rps,
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    );
    Ok(())
}
