#!/usr/bin/env python3
"""What logging costs at the level production uses: our release subscription service and its worker under the
same request streams, logging as production does (LOG_LEVEL=info, LOG_FORMAT=json, ACCESS_LOG_SAMPLE=100, to a
file) against logging only warnings (LOG_LEVEL=warn: no access lines at all), in alternating runs, both started
anew for every round, with medians, min-max and the ratio per scenario.

    ./bench/logging_ab.py [--rounds 5] [--seconds 10] [--concurrency 64] [--scenarios subscriptions-me,usage-use]

Uses sidebyside.py's helpers (the development PostgreSQL and Redis, a database made anew, a quiet machine before
each run, the run's Redis keys deleted at the end). Prints Markdown; raw figures in
.run/bench/logging-<timestamp>.json.
"""
import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sidebyside import (OURS_PORT, OURS_PREFIX, ROOT, forget_redis_prefix, measure, pids_named,  # noqa: E402
                        ports, sh, spread, start_ours, start_stores, stop_all, tree, wait_http)

CONFIGS = {
    "production": {"LOG_LEVEL": "info", "LOG_FORMAT": "json", "ACCESS_LOG_SAMPLE": "100"},
    "warnings only": {"LOG_LEVEL": "warn", "LOG_FORMAT": "json"},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--scenarios", default="subscriptions-me,usage-use")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    sh(["cargo", "build", "--release", "--locked", "-p", "subscription-service", "-p", "billing-bench", "--bins"])
    start_stores()
    p = ports()
    results = {s: {name: [] for name in CONFIGS} for s in scenarios}
    try:
        for r in range(args.rounds):
            order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
            for name in order:
                server, worker = start_ours(p, args.workers, f"logging-{r + 1}", CONFIGS[name], fresh=r == 0)
                try:
                    wait_http(f"http://127.0.0.1:{OURS_PORT}/v1/health", "our service")
                    for scenario in scenarios:
                        def pids(server=server, worker=worker):
                            return {"app": tree(server.pid), "worker": [worker.pid],
                                    "postgres": pids_named("postgres"), "redis": pids_named("redis-server")}
                        figures = measure(args, scenario, "ours", pids)
                        results[scenario][name].append(figures)
                        print(f"round {r + 1} {scenario:>16} {name:>13}: {figures['rps']:8.0f} req/s  p99 "
                              f"{figures['p99']:6.1f} ms", file=sys.stderr, flush=True)
                finally:
                    stop_all([server, worker])
    finally:
        forget_redis_prefix(p, OURS_PREFIX)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    with open(os.path.join(ROOT, ".run", "bench", f"logging-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    print(f"Logging, {stamp}: {args.rounds} rounds of {args.seconds} s, {args.concurrency} connections; "
          "median (min–max).\n")
    print("| scenario | production req/s | warnings only req/s | production / warnings only | production p99 ms | "
          "warnings only p99 ms | app CPU ms/req (production, warnings only) |")
    print("|---|---|---|---|---|---|---|")
    prod, quiet = CONFIGS
    for s in scenarios:
        a, b = results[s][prod], results[s][quiet]
        # Runs of a round are back to back: the ratio is taken per round.
        ratios = [x["rps"] / max(y["rps"], 1e-9) for x, y in zip(a, b)]
        cpu = lambda runs: statistics.median(r["cpu_ms"]["app"] for r in runs)
        print(f"| {s} | {spread([x['rps'] for x in a])} | {spread([y['rps'] for y in b])} | "
              f"{spread(ratios, '{:.3f}')} | {spread([x['p99'] for x in a], '{:.1f}')} | "
              f"{spread([y['p99'] for y in b], '{:.1f}')} | {cpu(a):.4f}, {cpu(b):.4f} |")


if __name__ == "__main__":
    main()
