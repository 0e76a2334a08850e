#!/usr/bin/env python3
"""Side by side: the same request streams against our release subscription service (A) and the Python peer (B),
both on the development PostgreSQL and Redis, in alternating runs (A then B, then B then A, ...), with medians,
min-max, the A/B ratio per scenario and each process's CPU per request.

    ./bench/sidebyside.py [--rounds 5] [--seconds 10] [--concurrency 64] [--scenarios health,auth-me,...]

The peer is FastAPI + uvicorn (uvloop, httptools, one worker per core, no access log) + asyncpg: the minimal peer
of ../shared/peers/fastapi-min (run from there) with this directory's peer/app.py adding the other routes. Ours runs
as deployed (server and worker) and logs as production does: LOG_LEVEL=info, LOG_FORMAT=json, ACCESS_LOG_SAMPLE=100,
to a file. Each run starts on fresh databases (ours `bench_subscription`, made anew; the peer's
tables, remade) and a Redis key prefix of its own. Prints Markdown; writes the raw figures to
.run/bench/sidebyside-<timestamp>.json.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BIN = "/usr/lib/postgresql/15/bin"
OURS_PORT, PEER_PORT = 8101, 58101
SCENARIOS = ["health", "auth-me", "subscriptions-me", "usage-limits", "usage-use"]
TICK = os.sysconf("SC_CLK_TCK")
# This run's Redis key prefix (ours; the peer keeps no state in Redis), deleted when the run is done.
OURS_PREFIX = f"bench:{int(time.time())}:"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def ports():
    env = {}
    with open(os.path.join(ROOT, ".run/development/ports.env")) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                env[key] = value
    return env


def fresh_database(env_pg, name):
    """Drops `name` and makes it anew (the service migrates it when seeded)."""
    sh([f"{PG_BIN}/dropdb", "--if-exists", "--force", name], env=env_pg)
    sh([f"{PG_BIN}/createdb", name], env=env_pg)


def pg_environment(p):
    """The environment psql and createdb need for the development PostgreSQL."""
    return {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": p["PG_PORT"], "PGUSER": "billing",
            "PGPASSWORD": "dev-only-password"}


def start_ours(p, workers, name, extra=None, fresh=True):
    """Our subscription service and its worker, as deployed and logging as production does, on a database made
    anew (`bench_subscription`, unless `fresh` is false) and a Redis key prefix of their own (`extra` overrides or
    adds settings): (server, worker)."""
    if fresh:
        fresh_database(pg_environment(p), "bench_subscription")
    logs = os.path.join(ROOT, ".run", "bench")
    os.makedirs(logs, exist_ok=True)
    env = {**os.environ, "APP_ENV": "development", **p,
           "SUBSCRIPTION_DATABASE_URL":
               f"postgres://billing:dev-only-password@127.0.0.1:{p['PG_PORT']}/bench_subscription",
           "REDIS_KEY_PREFIX": OURS_PREFIX, "SUBSCRIPTION_PORT": str(OURS_PORT),
           "LOG_LEVEL": "info", "LOG_FORMAT": "json", "ACCESS_LOG_SAMPLE": "100", "HTTP_WORKERS": str(workers),
           # A bench configuration: every bench user signs up and logs in from this one address.
           "RATE_LIMIT_REGISTRATIONS_PER_HOUR": "1000000", "RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN": "1000000",
           **(extra or {})}
    sh(["./target/release/subscription-service", "seed"], env=env, stdout=subprocess.DEVNULL)
    server = subprocess.Popen(["./target/release/subscription-service", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, f"{name}.log"), "w"))
    # The worker folds accepted usage into PostgreSQL every second (its CPU is reported apart).
    worker = subprocess.Popen(["./target/release/subscription-service", "worker"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(logs, f"{name}-worker.log"), "w"))
    return server, worker


def forget_redis_prefix(p, prefix):
    """Deletes every Redis key under `prefix` once a run is done (bench/forget-redis-keys.sh says why)."""
    sh(["bench/forget-redis-keys.sh", p["REDIS_PORT"], prefix])


def start_stores():
    """The development PostgreSQL and Redis, started if they are not running (nothing else is touched)."""
    for service in ["postgres", "redis"]:
        sh(["./scripts/env-manager.sh", "-e", "development", "start", "-s", service], stdout=subprocess.DEVNULL)


def stop_all(procs):
    """Asks every process to stop, then waits for each (killing one that takes more than 10 s)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(url, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{what} did not answer at {url}")


def per_pid_ticks(pids):
    """{pid: CPU ticks (user + system) so far} of each process still running."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return out


def machine_busy():
    """Busy jiffies of the whole machine so far, from /proc/stat (iowait counts as idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]


def quiet(limit=30.0, window=0.5, cores=0.25):
    """Waits until the machine has been nearly idle (under `cores` of CPU busy) for two windows in a row, so that
    what one run left behind (our worker folding usage, autovacuum after writes, a pool closing) is neither
    measured in the next run nor lost from its own; gives up after `limit` seconds. Returns the seconds waited."""
    started, calm = time.monotonic(), 0
    busy0 = machine_busy()
    while calm < 2 and time.monotonic() - started < limit:
        time.sleep(window)
        busy1 = machine_busy()
        calm = calm + 1 if (busy1 - busy0) / TICK / window < cores else 0
        busy0 = busy1
    return time.monotonic() - started


def tree(pid):
    """`pid` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return out


def pids_named(name):
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def venv(path):
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        sh([sys.executable, "-m", "venv", path])
    probe = subprocess.run([python, "-c", "import fastapi, uvicorn, uvloop, httptools, asyncpg, jwt"], cwd=ROOT)
    if probe.returncode != 0:
        sh([python, "-m", "pip", "install", "--quiet", "fastapi", "uvicorn[standard]", "asyncpg", "pyjwt"])
    return python


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--peer-dir", default=os.path.join(os.path.dirname(ROOT), "shared", "peers", "fastapi-min"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="HTTP workers on each side")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if not os.path.exists(os.path.join(args.peer_dir, "app.py")):
        sys.exit(f"the peer is not at {args.peer_dir} (--peer-dir)")

    sh(["cargo", "build", "--release", "--locked", "-p", "subscription-service", "-p", "billing-bench", "--bins"])
    start_stores()
    p = ports()
    env_pg = pg_environment(p)
    exists = subprocess.run([f"{PG_BIN}/psql", "-d", "postgres", "-tAc",
                             "SELECT 1 FROM pg_database WHERE datname = 'bench_peer'"],
                            env=env_pg, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if exists != "1":
        sh([f"{PG_BIN}/createdb", "bench_peer"], env=env_pg)
    sh([f"{PG_BIN}/psql", "-q", "-d", "bench_peer", "-v", "ON_ERROR_STOP=1", "-f", "bench/peer/schema.sql"],
       env=env_pg, stdout=subprocess.DEVNULL)
    python = venv(os.path.join(ROOT, ".run", "bench", "venv"))
    logs = os.path.join(ROOT, ".run", "bench")
    try:
        results = run(args, scenarios, p, python)
    finally:
        forget_redis_prefix(p, OURS_PREFIX)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    with open(os.path.join(logs, f"sidebyside-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    report(args, scenarios, results, stamp)


def measure(args, scenario, side, pids):
    """One loadgen run against `side`; `pids()` names each process group to read the CPU of, and is asked again
    at the end, so that a process started during the run (a PostgreSQL backend for a pool's new connection) is
    counted from its start."""
    settled_before = quiet()
    before = {name: per_pid_ticks(ps) for name, ps in pids().items()}
    url = f"http://127.0.0.1:{OURS_PORT if side == 'ours' else PEER_PORT}"
    out = subprocess.run(["./target/release/loadgen", "--url", url, "--scenario", scenario, "--target", side,
                          "--concurrency", str(args.concurrency), "--seconds", str(args.seconds), "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"loadgen {scenario} {side} failed: {out.stderr}")
    # The work a run leaves behind (our worker folding the usage it accepted) is the run's: its CPU is read once
    # the machine is quiet again.
    settled_after = quiet()
    after = {name: per_pid_ticks(ps) for name, ps in pids().items()}
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["settled_s"] = [round(settled_before, 1), round(settled_after, 1)]
    # CPU over the whole run (its warm-up second too, and what it left behind) per request of the whole run.
    requests = max(figures["all_requests"], 1)
    used = {name: sum(t - before.get(name, {}).get(pid, 0) for pid, t in ticks.items()) for name, ticks in after.items()}
    figures["cpu_ms"] = {name: ticks * 1000 / TICK / requests for name, ticks in used.items()}
    return figures


def start_sides(args, p, python, r):
    """Both sides started anew for round `r` (ours on a database made anew for the first round only, as the
    peer's tables are made once per run): (our server, our worker, the peer)."""
    logs = os.path.join(ROOT, ".run", "bench")
    ours, worker = start_ours(p, args.workers, f"ours-{r + 1}", fresh=r == 0)
    peer_env = {**os.environ, "PEER_DIR": args.peer_dir,
                "DATABASE_URL": f"postgresql://billing:dev-only-password@127.0.0.1:{p['PG_PORT']}/bench_peer"}
    peer = subprocess.Popen([python, "-m", "uvicorn", "app:app", "--app-dir", "bench/peer", "--workers",
                             str(args.workers), "--loop", "uvloop", "--http", "httptools", "--port", str(PEER_PORT),
                             "--no-access-log", "--log-level", "warning"],
                            env=peer_env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(logs, f"peer-{r + 1}.log"), "w"))
    try:
        wait_http(f"http://127.0.0.1:{OURS_PORT}/v1/health", "our service")
        wait_http(f"http://127.0.0.1:{PEER_PORT}/v1/health", "the peer")
    except BaseException:
        stop_all([ours, worker, peer])
        raise
    return ours, worker, peer


def run(args, scenarios, p, python):
    """Each round starts both sides' processes anew: whatever differs from one start to the next (not pinned
    down; where the kernel places the workers, Python's hash seed and the memory layout are candidates) varies
    between runs, and measured within one set of processes it did not show in the min-max, so a second run's
    median fell outside it."""
    results = {s: {"ours": [], "peer": []} for s in scenarios}
    for r in range(args.rounds):
        ours, worker, peer = start_sides(args, p, python, r)
        try:
            for scenario in scenarios:
                order = ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]
                for side in order:
                    def pids(side=side, ours=ours, worker=worker, peer=peer):
                        return {"app": tree(ours.pid) if side == "ours" else tree(peer.pid),
                                "worker": [worker.pid] if side == "ours" else [],
                                "postgres": pids_named("postgres"), "redis": pids_named("redis-server")}
                    figures = measure(args, scenario, side, pids)
                    results[scenario][side].append(figures)
                    print(f"round {r + 1} {scenario:>16} {side:>4}: {figures['rps']:8.0f} req/s  p99 "
                          f"{figures['p99']:6.1f} ms  errors {figures['errors']}  quiet after "
                          f"{figures['settled_s'][0]}, {figures['settled_s'][1]} s", file=sys.stderr, flush=True)
        finally:
            stop_all([ours, worker, peer])
    return results


def spread(values, fmt="{:.0f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(args, scenarios, results, stamp):
    print(f"Side by side, {stamp}: {args.rounds} rounds of {args.seconds} s per side and scenario, "
          f"{args.concurrency} connections, {args.workers} HTTP workers each; median (min–max).\n")
    print("| scenario | ours req/s | peer req/s | ratio | ours p99 ms | peer p99 ms | ours CPU ms/req (app, worker, "
          "pg, redis) | peer CPU ms/req (app, pg) | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in scenarios:
        a, b = results[s]["ours"], results[s]["peer"]
        ratios = [x["rps"] / max(y["rps"], 1e-9) for x, y in zip(a, b)]
        cpu = lambda runs, name: statistics.median(r["cpu_ms"][name] for r in runs)
        print(f"| {s} | {spread([x['rps'] for x in a])} | {spread([y['rps'] for y in b])} | "
              f"{spread(ratios, '{:.2f}')}× | {spread([x['p99'] for x in a], '{:.1f}')} | "
              f"{spread([y['p99'] for y in b], '{:.1f}')} | "
              f"{cpu(a, 'app'):.3f}, {cpu(a, 'worker'):.3f}, {cpu(a, 'postgres'):.3f}, {cpu(a, 'redis'):.3f} | "
              f"{cpu(b, 'app'):.3f}, {cpu(b, 'postgres'):.3f} | "
              f"{sum(x['errors'] for x in a)} / {sum(y['errors'] for y in b)} |")


if __name__ == "__main__":
    main()
