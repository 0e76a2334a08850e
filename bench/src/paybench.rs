//! `paybench`: end-to-end payments per second against running services and workers, measured from
//! `POST /v1/payments/process` until the subscription service reports the subscription `active` (the signed
//! webhook has been delivered and applied). Each of C customers loops: create a paid subscription, pay it, wait
//! until it is active, cancel it. Prints throughput and the latency distribution as one Markdown table row.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8101")]
    subscription_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8102")]
    payment_url: String,
    /// Concurrent customers (each signs up once: `bench/run.sh` lifts the registration limit for its processes).
    #[arg(long, default_value_t = 16)]
    customers: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// An administrator, who creates the bench's own 29.99 USD plan (the catalog is left as it is).
    #[arg(long, default_value = "admin@billing.local")]
    admin_email: String,
    #[arg(long, default_value = "dev-only-Admin-2026")]
    admin_password: String,
}

/// A new active monthly plan at 29.99 USD (what each payment pays), created by the administrator.
async fn bench_plan(client: &reqwest::Client, args: &Args) -> anyhow::Result<i64> {
    let login = json!({"email": args.admin_email, "password": args.admin_password});
    let (status, admin) =
        call(client, reqwest::Method::POST, format!("{}/v1/auth/login", args.subscription_url), None, Some(login))
            .await?;
    if status != 200 {
        bail!("admin login: {status} {admin}");
    }
    let token = admin["data"]["access_token"].as_str().context("admin token")?.to_owned();
    let code = format!("paybench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let plan =
        json!({"code": code, "name": "Paybench", "price": "29.99", "currency": "USD", "billing_cycle": "monthly"});
    let (status, plan) = call(
        client,
        reqwest::Method::POST,
        format!("{}/v1/admin/plans", args.subscription_url),
        Some(&token),
        Some(plan),
    )
    .await?;
    if status != 201 {
        bail!("bench plan: {status} {plan}");
    }
    plan["data"]["id"].as_i64().context("plan id")
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or_default()))
}

/// What one customer measured: each payment's latency, and how many times it asked for the subscription's status.
struct Loops {
    latencies: Vec<Duration>,
    polls: usize,
}

async fn customer(
    client: reqwest::Client,
    args: std::sync::Arc<Args>,
    plan: i64,
    end: Instant,
) -> anyhow::Result<Loops> {
    let email = format!("paybench-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, reg) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/auth/register", args.subscription_url),
        None,
        Some(json!({"email": email, "password": "bench pass 2026"})),
    )
    .await?;
    if status != 201 {
        bail!("register: {status} {reg}");
    }
    let token = reg["data"]["access_token"].as_str().context("token")?.to_owned();
    let mut latencies = Vec::new();
    let mut polls = 0;
    while Instant::now() < end {
        let (status, sub) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/subscriptions", args.subscription_url),
            Some(&token),
            Some(json!({"plan_id": plan})),
        )
        .await?;
        if status != 201 {
            bail!("subscribe: {status} {sub}");
        }
        let id = sub["data"]["id"].as_str().context("id")?.to_owned();
        let started = Instant::now();
        let body = json!({"subscription_id": id, "amount": "29.99", "currency": "USD", "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "Bench", "save_card": false});
        let (status, paid) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/payments/process", args.payment_url),
            Some(&token),
            Some(body),
        )
        .await?;
        if status != 201 {
            bail!("pay: {status} {paid}");
        }
        loop {
            polls += 1;
            let (_, s) = call(
                &client,
                reqwest::Method::GET,
                format!("{}/v1/subscriptions/{id}", args.subscription_url),
                Some(&token),
                None,
            )
            .await?;
            if s["data"]["status"] == "active" {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("not active after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(started.elapsed());
        call(
            &client,
            reqwest::Method::DELETE,
            format!("{}/v1/subscriptions/{id}?immediately=true", args.subscription_url),
            Some(&token),
            None,
        )
        .await?;
    }
    Ok(Loops { latencies, polls })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let client = reqwest::Client::new();
    let plan = bench_plan(&client, &args).await?;
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> =
        (0..args.customers).map(|_| tokio::spawn(customer(client.clone(), args.clone(), plan, end))).collect();
    let (mut all, mut polls) = (Vec::new(), 0);
    for t in tasks {
        let done = t.await??;
        all.extend(done.latencies);
        polls += done.polls;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!("| customers | payments | payments/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        args.customers,
        all.len(),
        all.len() as f64 / elapsed,
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99),
        all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    );
    // For bench/payments-trace.sh: the bench's own status reads, told apart from the services' in the trace.
    eprintln!("polls={polls}");
    Ok(())
}
