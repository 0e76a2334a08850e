#!/usr/bin/env python3
"""A billing day: N subscriptions (100,000 by default) whose periods all end at the same instant, renewed by the
processes as deployed (subscription service and worker, payment service and worker, the gateway simulator), each
renewal invoiced, charged off-session through the gateway with the customer's saved card, and active again.

    ./bench/billing_day.py [--subscriptions 100000] [--timeout-minutes 60]

The rows are generated in SQL on databases made anew (`bench_subscription`, `bench_payment`): N users, each with a
saved card in the payment service (its token made at the gateway simulator, one per card; the rows shaped like
the one a real payment with `save_card` makes first) and an active monthly subscription whose period ends at the instant T. T is reached before the
worker starts: when it starts, all N are due at once. Reports renewals per second and the time until every
renewal is invoiced, paid and its subscription active on its next period, with progress every 10 s, and shows
the plan PostgreSQL chooses for each query the worker runs to find due work (with N rows in the table).
Raw figures: .run/bench/billing-day-<timestamp>.json.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sidebyside import (PG_BIN, ROOT, forget_redis_prefix, fresh_database, pg_environment, ports, sh,  # noqa: E402
                        start_stores, stop_all, wait_http)

SUB_PORT, PAY_PORT, GW_PORT = 8101, 8102, 8103

# The queries the worker's tick runs to find due work (services/subscription-service/src/db), as diesel writes
# them, with `now` and the batch size bound.
DUE_QUERIES = {
    "renewals_due (subscriptions at their period end, not yet invoiced)": """
        SELECT s.id FROM subscriptions s
        WHERE s.status = 'active' AND s.current_period_end <= now()
          AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.subscription_id = s.id AND i.kind = 'renewal'
                          AND i.period_start = s.current_period_end AND i.status <> 'void')
        ORDER BY s.current_period_end LIMIT 100""",
    "retries_due (dunning retries)": """
        SELECT id FROM invoices WHERE status = 'open' AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT 100""",
    "trials_due (trials at their end)": """
        SELECT id FROM subscriptions WHERE status = 'trial' AND trial_end <= now() ORDER BY trial_end LIMIT 100""",
    "initial_overdue (first invoices never paid)": """
        SELECT id FROM invoices WHERE status = 'open' AND kind = 'initial' AND due_at <= now()
        ORDER BY due_at LIMIT 100""",
}


def psql(env_pg, db, sql):
    out = subprocess.run([f"{PG_BIN}/psql", "-d", db, "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env_pg,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def call(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def pay_with_a_saved_card(env_pg, plan):
    """Signs up one customer who pays a subscription with a card and keeps it, through the API: the payment
    method rows generated below are shaped like the one this makes."""
    sub = f"http://127.0.0.1:{SUB_PORT}"
    status, reg = call("POST", f"{sub}/v1/auth/register",
                       {"email": f"billing-day-{int(time.time())}@example.com", "password": "bench pass 2026"})
    assert status == 201, (status, reg)
    token = reg["data"]["access_token"]
    status, made = call("POST", f"{sub}/v1/subscriptions", {"plan_id": plan}, token)
    assert status == 201, (status, made)
    price = psql(env_pg, "bench_subscription", f"SELECT round(price, 2) FROM plans WHERE id = {plan}")
    status, paid = call("POST", f"http://127.0.0.1:{PAY_PORT}/v1/payments/process",
                        {"subscription_id": made["data"]["id"], "amount": price, "currency": "USD",
                         "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvv": "123",
                         "cardholder_name": "Billing Day", "save_card": True}, token)
    assert status == 201, (status, paid)


def gateway_cards(n, api_key):
    """N cards saved at the gateway simulator (each payment method of ours holds a token of its own)."""
    body = b"type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2030"

    def one(_):
        req = urllib.request.Request(f"http://127.0.0.1:{GW_PORT}/v1/payment_methods", data=body, method="POST")
        req.add_header("authorization", f"Bearer {api_key}")
        req.add_header("content-type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())["id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def generate(env_pg, n, plan, tokens, period_end):
    """N users with a saved card each and an active monthly subscription ending at `period_end`."""
    user = "('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid"
    method = "('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid"
    start = f"timestamptz '{period_end.isoformat()}' - interval '1 month'"
    rows = "".join(f"{i},{token}\n" for i, token in enumerate(tokens, start=1))
    subprocess.run([f"{PG_BIN}/psql", "-d", "bench_payment", "-v", "ON_ERROR_STOP=1", "-qc", f"""
        CREATE TEMP TABLE cards (i int, token text);
        COPY cards FROM STDIN WITH (FORMAT csv);
        INSERT INTO payment_methods (id, user_id, gateway_token, brand, last4, exp_month, exp_year, cardholder_name,
                                     is_default)
        SELECT {method}, {user}, token, 'visa', '4242', 12, 2030, 'Billing Day', true FROM cards"""],
                   env=env_pg, input=rows, text=True, check=True)
    psql(env_pg, "bench_subscription", f"""
        INSERT INTO users (id, email, password_hash, role)
        SELECT {user}, 'day-' || i || '@example.com', 'not-a-login', 'user' FROM generate_series(1, {n}) AS i;
        INSERT INTO subscriptions (id, user_id, plan_id, quantity, status, is_trial, billing_anchor,
                                   current_period_start, current_period_end, cancel_at_period_end, payment_method_id)
        SELECT gen_random_uuid(), {user}, {plan}, 1, 'active', false, {start}, {start},
               timestamptz '{period_end.isoformat()}', false, {method}::text
        FROM generate_series(1, {n}) AS i;
        ANALYZE users; ANALYZE subscriptions; ANALYZE invoices;""")


def progress(env_pg, period_end):
    row = psql(env_pg, "bench_subscription", f"""
        SELECT (SELECT count(*) FROM invoices WHERE kind = 'renewal'),
               (SELECT count(*) FROM invoices WHERE kind = 'renewal' AND status = 'paid'),
               (SELECT count(*) FROM subscriptions WHERE status = 'active'
                  AND current_period_start = timestamptz '{period_end.isoformat()}'),
               (SELECT count(*) FROM subscriptions WHERE status = 'past_due')""")
    invoiced, paid, renewed, past_due = (int(x) for x in row.split("|"))
    return {"invoiced": invoiced, "paid": paid, "renewed": renewed, "past_due": past_due}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscriptions", type=int, default=100_000)
    ap.add_argument("--timeout-minutes", type=float, default=60)
    args = ap.parse_args()

    sh(["cargo", "build", "--release", "--locked", "-p", "subscription-service", "-p", "payment-service",
        "-p", "gateway-simulator"])
    start_stores()
    p = ports()
    env_pg = pg_environment(p)
    for db in ("bench_subscription", "bench_payment"):
        fresh_database(env_pg, db)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = os.path.join(ROOT, ".run", "bench")
    os.makedirs(out, exist_ok=True)
    url = f"postgres://billing:dev-only-password@127.0.0.1:{p['PG_PORT']}"
    env = {**os.environ, "APP_ENV": "development", **p,
           "SUBSCRIPTION_DATABASE_URL": f"{url}/bench_subscription", "PAYMENT_DATABASE_URL": f"{url}/bench_payment",
           "REDIS_KEY_PREFIX": f"billing-day:{stamp}:", "LOG_LEVEL": "warn", "LOG_FORMAT": "json",
           "SUBSCRIPTION_PORT": str(SUB_PORT), "PAYMENT_PORT": str(PAY_PORT), "GATEWAY_PORT": str(GW_PORT),
           "SUBSCRIPTION_SERVICE_URL": f"http://127.0.0.1:{SUB_PORT}",
           "PAYMENT_SERVICE_URL": f"http://127.0.0.1:{PAY_PORT}", "GATEWAY_URL": f"http://127.0.0.1:{GW_PORT}",
           "GATEWAY_SIMULATOR_JOURNAL": os.path.join(out, f"billing-day-gateway-{stamp}.jsonl"),
           # A bench configuration: the one customer made through the API signs up from this one address.
           "RATE_LIMIT_REGISTRATIONS_PER_HOUR": "1000000", "RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN": "1000000"}
    procs = {}

    def start(name, cmd):
        procs[name] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(out, f"billing-day-{name}.log"), "w"))

    try:
        sh(["./target/release/subscription-service", "seed"], env=env, stdout=subprocess.DEVNULL)
        sh(["./target/release/payment-service", "seed"], env=env, stdout=subprocess.DEVNULL)
        start("gateway", ["./target/release/gateway-simulator"])
        start("payment", ["./target/release/payment-service", "serve"])
        start("payment-worker", ["./target/release/payment-service", "worker"])
        start("subscription", ["./target/release/subscription-service", "serve"])
        for port in (GW_PORT, PAY_PORT, SUB_PORT):
            wait_http(f"http://127.0.0.1:{port}/v1/health/detailed", f"port {port}")
        plan = int(psql(env_pg, "bench_subscription", """SELECT id FROM plans WHERE is_active AND currency = 'USD'
            AND billing_cycle = 'monthly' AND price > 0 AND NOT is_trial_plan ORDER BY price LIMIT 1"""))
        pay_with_a_saved_card(env_pg, plan)
        began = time.time()
        tokens = gateway_cards(args.subscriptions, p.get("GATEWAY_API_KEY", "sk_test_dev_only_simulator_key_000000000001"))
        period_end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        generate(env_pg, args.subscriptions, plan, tokens, period_end)
        print(f"generated {args.subscriptions} subscriptions ending at {period_end.isoformat()} "
              f"in {time.time() - began:.1f} s", flush=True)
        plans = {}
        for name, sql in DUE_QUERIES.items():
            plans[name] = psql(env_pg, "bench_subscription", "EXPLAIN " + sql)
        # The worker starts now: every generated subscription is due at this instant.
        started = time.time()
        start("subscription-worker", ["./target/release/subscription-service", "worker"])
        samples = []
        deadline = started + args.timeout_minutes * 60
        while True:
            time.sleep(10)
            state = progress(env_pg, period_end)
            state["seconds"] = round(time.time() - started, 1)
            samples.append(state)
            print(f"{state['seconds']:7.1f} s: {state['invoiced']} invoiced, {state['paid']} paid, "
                  f"{state['renewed']} active on the next period, {state['past_due']} past due", flush=True)
            if state["renewed"] >= args.subscriptions or time.time() > deadline:
                break
        # The last sample is taken up to 10 s after the end: the drain time is when the last one turned active.
        drained = psql(env_pg, "bench_subscription", f"""SELECT extract(epoch FROM max(updated_at)) FROM subscriptions
            WHERE current_period_start = timestamptz '{period_end.isoformat()}'""")
        drain = float(drained) - started if drained else None
        # And again with the day's invoices in the table (before, it held one).
        for name, sql in DUE_QUERIES.items():
            plans[name + ", after the day"] = psql(env_pg, "bench_subscription", "EXPLAIN " + sql)
        # Right after the day the statistics still see every period ending now (the planner may then hash the
        # whole invoice table); autovacuum analyzes the tables within a minute. The plans once it has:
        psql(env_pg, "bench_subscription", "ANALYZE subscriptions, invoices")
        for name, sql in DUE_QUERIES.items():
            plans[name + ", after the day, analyzed"] = psql(env_pg, "bench_subscription", "EXPLAIN " + sql)
        first_invoiced = psql(env_pg, "bench_subscription",
                              "SELECT extract(epoch FROM max(created_at) - min(created_at)) FROM invoices "
                              "WHERE kind = 'renewal'")
    finally:
        stop_all(list(procs.values()))
        forget_redis_prefix(p, env["REDIS_KEY_PREFIX"])
    final = samples[-1]
    result = {"subscriptions": args.subscriptions, "period_end": period_end.isoformat(), "samples": samples,
              "drain_seconds": drain, "invoicing_seconds": float(first_invoiced or 0), "plans": plans,
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    with open(os.path.join(out, f"billing-day-{stamp}.json"), "w") as f:
        json.dump(result, f, indent=2)
    print()
    print("| subscriptions | renewed (active on the next period) | renewal invoices paid | time to drain | "
          "renewals/s | invoices created in |")
    print("|---|---|---|---|---|---|")
    rate = final["renewed"] / drain if drain else 0
    print(f"| {args.subscriptions} | {final['renewed']} | {final['paid']} | {drain:.0f} s | {rate:.0f} | "
          f"{float(first_invoiced or 0):.0f} s |")
    print()
    for name, plan in plans.items():
        print(f"{name}:\n```\n{plan}\n```")
    if final["renewed"] < args.subscriptions:
        sys.exit(f"only {final['renewed']} of {args.subscriptions} renewed before the timeout")


if __name__ == "__main__":
    main()
