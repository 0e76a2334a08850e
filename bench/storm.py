#!/usr/bin/env python3
"""A login storm and a soak against our release subscription service and worker (as deployed, production logging),
on the development PostgreSQL and Redis.

    ./bench/storm.py [--soak-seconds 600] [--storm-connections 200] [--soak-connections 200]

1. Reads at rest: `GET /v1/subscriptions/me` on 16 connections for 10 s (p99 at rest).
2. The storm: 200 connections logging in for 10 s while the same reads run beside them: logins per second, how
   many were turned away busy (503), the reads' p99 meanwhile, the service's peak RSS.
3. The soak: seed 002's mix (70 % subscriptions/me, 20 % usage/use, 8 % usage/limits, 2 % logins) on 200
   connections for --soak-seconds and, beside it, --soak-payers customers paying in a loop (paybench: create a
   subscription, pay it through the payment service and the gateway simulator, wait until it is active, cancel),
   with each of the four processes' RSS every 10 s.

Prints Markdown; writes the raw figures to .run/bench/storm-<timestamp>.json.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sidebyside import (OURS_PORT, ROOT, forget_redis_prefix, fresh_database, pg_environment, ports, sh,  # noqa: E402
                        start_ours, start_stores, stop_all, wait_http)

PAY_PORT, GATEWAY_PORT = 8102, 8103


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def loadgen(scenario, connections, seconds):
    return subprocess.Popen(["./target/release/loadgen", "--url", f"http://127.0.0.1:{OURS_PORT}", "--scenario",
                             scenario, "--concurrency", str(connections), "--seconds", str(seconds), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc):
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"loadgen failed: {err}")
    return json.loads(out.strip().splitlines()[-1])


def start_payments(p, shared, name):
    """The payment service, its worker and the gateway simulator, on a payment database made anew and the
    subscription service's Redis prefix (the two services' queues meet there): [server, worker, gateway]."""
    fresh_database(pg_environment(p), "bench_payment")
    logs = os.path.join(ROOT, ".run", "bench")
    env = {**os.environ, "APP_ENV": "development", **p, **shared,
           "PAYMENT_DATABASE_URL": f"postgres://billing:dev-only-password@127.0.0.1:{p['PG_PORT']}/bench_payment",
           "PAYMENT_PORT": str(PAY_PORT), "LOG_LEVEL": "info", "LOG_FORMAT": "json", "ACCESS_LOG_SAMPLE": "100",
           "GATEWAY_PORT": str(GATEWAY_PORT), "GATEWAY_SIMULATOR_JOURNAL": os.path.join(logs, f"{name}-gateway.jsonl")}
    # Migrated before its worker starts (the server would migrate it too, racing the worker's first ticks).
    sh(["./target/release/payment-service", "migrate"], env=env, stdout=subprocess.DEVNULL)
    procs = []
    for what, argv in [("gateway", ["./target/release/gateway-simulator"]),
                       ("payment", ["./target/release/payment-service", "serve"]),
                       ("payment-worker", ["./target/release/payment-service", "worker"])]:
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(logs, f"{name}-{what}.log"), "w")))
    return procs


def paybench(customers, seconds):
    return subprocess.Popen(["./target/release/paybench", "--subscription-url", f"http://127.0.0.1:{OURS_PORT}",
                             "--payment-url", f"http://127.0.0.1:{PAY_PORT}", "--customers", str(customers),
                             "--seconds", str(seconds)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def paybench_result(proc):
    """paybench's Markdown row: customers, payments, payments/s, p50, p90, p99, max (ms)."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"paybench failed: {err}")
    cells = [c.strip() for c in out.strip().splitlines()[-1].strip("|").split("|")]
    keys = ["customers", "payments", "per_second", "p50", "p90", "p99", "max"]
    return {k: float(v) for k, v in zip(keys, cells)}


def sample(pids, every, stop, into):
    while not stop.is_set():
        into.append({"t": time.time(), **{name: rss_mib(pid) for name, pid in pids.items()}})
        stop.wait(every)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--soak-seconds", type=int, default=600)
    ap.add_argument("--storm-connections", type=int, default=200)
    ap.add_argument("--soak-connections", type=int, default=200)
    ap.add_argument("--soak-payers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    sh(["cargo", "build", "--release", "--locked", "-p", "subscription-service", "-p", "payment-service", "-p",
        "gateway-simulator", "-p", "billing-bench", "--bins"])
    start_stores()
    logs = os.path.join(ROOT, ".run", "bench")
    p = ports()
    shared = {"REDIS_KEY_PREFIX": f"storm:{int(time.time())}:",
              "SUBSCRIPTION_SERVICE_URL": f"http://127.0.0.1:{OURS_PORT}",
              "PAYMENT_SERVICE_URL": f"http://127.0.0.1:{PAY_PORT}", "GATEWAY_URL": f"http://127.0.0.1:{GATEWAY_PORT}"}
    server, worker = start_ours(p, args.workers, "storm", shared)
    payments = start_payments(p, shared, "storm")
    figures = {}
    try:
        wait_http(f"http://127.0.0.1:{OURS_PORT}/v1/health", "our service")
        wait_http(f"http://127.0.0.1:{PAY_PORT}/v1/health", "the payment service")
        wait_http(f"http://127.0.0.1:{GATEWAY_PORT}/v1/health", "the gateway simulator")
        pids = {"server": server.pid, "worker": worker.pid}
        pay_pids = {"payment": payments[1].pid, "payment_worker": payments[2].pid}
        figures["rss_start"] = {name: rss_mib(pid) for name, pid in pids.items()}
        figures["rest"] = result(loadgen("subscriptions-me", 16, 10))

        stop, rss = threading.Event(), []
        sampler = threading.Thread(target=sample, args=(pids, 0.5, stop, rss))
        sampler.start()
        storm, reads = loadgen("login", args.storm_connections, 10), loadgen("subscriptions-me", 16, 10)
        figures["storm"], figures["storm_reads"] = result(storm), result(reads)
        stop.set()
        sampler.join()
        figures["storm_peak_rss"] = {name: max(s[name] for s in rss) for name in pids}

        if args.soak_seconds > 0:
            stop, rss = threading.Event(), []
            pids = {**pids, **pay_pids}
            sampler = threading.Thread(target=sample, args=(pids, 10, stop, rss))
            sampler.start()
            payers = paybench(args.soak_payers, args.soak_seconds) if args.soak_payers > 0 else None
            figures["soak"] = result(loadgen("mixed", args.soak_connections, args.soak_seconds))
            if payers:
                figures["soak_payments"] = paybench_result(payers)
            stop.set()
            sampler.join()
            start = rss[0]["t"] if rss else 0
            figures["soak_rss"] = [{"s": round(s["t"] - start), **{n: round(s[n], 1) for n in pids}} for s in rss]
    finally:
        stop_all([server, worker, *payments])
        forget_redis_prefix(p, shared["REDIS_KEY_PREFIX"])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    with open(os.path.join(logs, f"storm-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "figures": figures}, f, indent=1)
    report(args, figures, stamp)


def report(args, f, stamp):
    rest, storm, reads = f["rest"], f["storm"], f["storm_reads"]
    busy = storm["statuses"].get("503", 0)
    print(f"Login storm and soak, finished {stamp} ({args.workers} HTTP workers, production logging).\n")
    print("| phase | figure |")
    print("|---|---|")
    print(f"| reads at rest (16 connections) | {rest['rps']:.0f} req/s, p99 {rest['p99']:.1f} ms |")
    print(f"| storm: {args.storm_connections} connections logging in | {storm['rps']:.0f} logins/s, p99 "
          f"{storm['p99']:.0f} ms, {busy} turned away busy (503), statuses {storm['statuses']} |")
    print(f"| reads during the storm (16 connections) | {reads['rps']:.0f} req/s, p99 {reads['p99']:.1f} ms "
          f"({reads['p99'] / max(rest['p99'], 1e-9):.2f}× at rest) |")
    print(f"| RSS | server {f['rss_start']['server']:.0f} MiB at start, {f['storm_peak_rss']['server']:.0f} MiB "
          f"peak in the storm; worker {f['storm_peak_rss']['worker']:.0f} MiB |")
    if "soak" in f:
        soak = f["soak"]
        print(f"| soak: {args.soak_connections} connections, seed 002's mix, {args.soak_seconds} s | "
              f"{soak['rps']:.0f} req/s, p95 {soak['p95']:.1f} ms, p99 {soak['p99']:.1f} ms, "
              f"{soak['errors']} errors, statuses {soak['statuses']} |")
        if "soak_payments" in f:
            pay = f["soak_payments"]
            print(f"| payments beside it: {args.soak_payers} customers paying in a loop | {pay['payments']:.0f} "
                  f"payments ({pay['per_second']:.1f}/s) until active, p50 {pay['p50']:.1f} ms, p99 "
                  f"{pay['p99']:.1f} ms |")
        names = [n for n in f["soak_rss"][0] if n != "s"] if f["soak_rss"] else []
        print("\nRSS during the soak (MiB), every 10 s:\n")
        print("| s | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for s in f["soak_rss"]:
            print(f"| {s['s']} | " + " | ".join(str(s[n]) for n in names) + " |")


if __name__ == "__main__":
    main()
