//! `paybench`: end-to-end payments per second against running services and workers, measured from
//! `POST /v1/payments/process` until the subscription service reports the subscription `active` (the signed
//! webhook has been delivered and applied). Each of C customers loops: create a paid subscription, pay it, wait
//! until it is active, cancel it. Prints throughput and the latency distribution as one Markdown table row.
//!
//! Payments alone: `--prepare N --file F` signs up C × N customers, each with a subscription waiting for its first
//! payment, and writes them to F; `--pay-from F` then only pays them (C at a time), and waits until every one is
//! active. What runs between the two is the payment's work and nothing else (`bench/run.sh` reads the database's
//! counters around the second).

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
    /// Prepare this many subscriptions per customer for `--pay-from`, written to `--file`, and stop.
    #[arg(long)]
    prepare: Option<usize>,
    /// Pay the subscriptions `--prepare` wrote to this file.
    #[arg(long)]
    pay_from: Option<std::path::PathBuf>,
    #[arg(long)]
    file: Option<std::path::PathBuf>,
}

/// A customer's token and a subscription of theirs waiting for its first payment.
#[derive(serde::Serialize, serde::Deserialize)]
struct Waiting {
    token: String,
    subscription: String,
}

/// Signs up a customer (one per subscription: a customer holds one live subscription) and subscribes them.
async fn waiting_subscription(client: &reqwest::Client, args: &Args, plan: i64) -> anyhow::Result<Waiting> {
    let email = format!("paybench-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": "bench pass 2026"});
    let url = format!("{}/v1/auth/register", args.subscription_url);
    let (status, reg) = call(client, reqwest::Method::POST, url, None, Some(body)).await?;
    if status != 201 {
        bail!("register: {status} {reg}");
    }
    let token = reg["data"]["access_token"].as_str().context("token")?.to_owned();
    let url = format!("{}/v1/subscriptions", args.subscription_url);
    let (status, sub) = call(client, reqwest::Method::POST, url, Some(&token), Some(json!({"plan_id": plan}))).await?;
    if status != 201 {
        bail!("subscribe: {status} {sub}");
    }
    Ok(Waiting { token, subscription: sub["data"]["id"].as_str().context("id")?.to_owned() })
}

async fn prepare(client: reqwest::Client, args: std::sync::Arc<Args>, per_customer: usize) -> anyhow::Result<()> {
    let plan = bench_plan(&client, &args).await?;
    let tasks: Vec<_> = (0..args.customers)
        .map(|_| {
            let (client, args) = (client.clone(), args.clone());
            tokio::spawn(async move {
                let mut made = Vec::with_capacity(per_customer);
                for _ in 0..per_customer {
                    made.push(waiting_subscription(&client, &args, plan).await?);
                }
                anyhow::Ok(made)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await??);
    }
    let file = args.file.as_ref().context("--prepare needs --file")?;
    std::fs::write(file, serde_json::to_vec(&all)?)?;
    eprintln!("prepared {} subscriptions in {}", all.iter().map(Vec::len).sum::<usize>(), file.display());
    Ok(())
}

/// Pays every prepared subscription, each customer's in turn, then waits until all are active: payments per
/// second over the whole, and each payment request's latency (the charge is made before it is answered; the
/// subscription turns active when the signed webhook is applied, which the final wait covers).
async fn pay_prepared(client: reqwest::Client, args: &Args, file: &std::path::Path) -> anyhow::Result<()> {
    let customers: Vec<Vec<Waiting>> = serde_json::from_slice(&std::fs::read(file)?)?;
    let started = Instant::now();
    let tasks: Vec<_> = customers
        .into_iter()
        .map(|subs| {
            let (client, url) = (client.clone(), format!("{}/v1/payments/process", args.payment_url));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(subs.len());
                for w in &subs {
                    let body = json!({"subscription_id": w.subscription, "amount": "29.99", "currency": "USD", "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvv": "123", "cardholder_name": "Bench", "save_card": false});
                    let at = Instant::now();
                    let (status, paid) =
                        call(&client, reqwest::Method::POST, url.clone(), Some(&w.token), Some(body)).await?;
                    if status != 201 {
                        bail!("pay: {status} {paid}");
                    }
                    latencies.push(at.elapsed());
                }
                anyhow::Ok((latencies, subs))
            })
        })
        .collect();
    let (mut all, mut paid) = (Vec::new(), Vec::new());
    for t in tasks {
        let (latencies, subs) = t.await??;
        all.extend(latencies);
        paid.extend(subs);
    }
    let requests_done = started.elapsed().as_secs_f64();
    let mut reads = 0;
    for w in &paid {
        loop {
            reads += 1;
            let url = format!("{}/v1/subscriptions/{}", args.subscription_url, w.subscription);
            let (_, s) = call(&client, reqwest::Method::GET, url, Some(&w.token), None).await?;
            if s["data"]["status"] == "active" {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("not active after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "| customers | payments | payments/s (until all active) | requests done in s | p50 ms | p90 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.1} | {} |",
        args.customers,
        all.len(),
        all.len() as f64 / elapsed,
        requests_done,
        latency_cells(&all)
    );
    eprintln!("polls={reads}");
    Ok(())
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

/// The p50, p90, p99 and max of sorted latencies, in ms, as the table's last four cells.
fn latency_cells(sorted: &[Duration]) -> String {
    let max = sorted.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    format!("{:.1} | {:.1} | {:.1} | {max:.1}", pct(sorted, 0.5), pct(sorted, 0.9), pct(sorted, 0.99))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let client = reqwest::Client::new();
    if let Some(per_customer) = args.prepare {
        return prepare(client, args, per_customer).await;
    }
    if let Some(file) = &args.pay_from {
        return pay_prepared(client, &args, file).await;
    }
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
    println!("| {} | {} | {:.1} | {} |", args.customers, all.len(), all.len() as f64 / elapsed, latency_cells(&all));
    // For bench/payments-trace.sh: the bench's own status reads, told apart from the services' in the trace.
    eprintln!("polls={polls}");
    Ok(())
}
