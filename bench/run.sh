#!/usr/bin/env bash
# The benchmark suite: builds release binaries, serves the subscription service on :8101 against the
# development PostgreSQL and Redis (started if needed, never someone else's), and drives each hot path with
# 64 concurrent connections. Prints one Markdown table; copy it into bench/README.md with the date and machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
# The services measured: this checkout's release build, or another build's (BIN_DIR) under the same load.
BIN=${BIN_DIR:-./target/release}
CONCURRENCY=${CONCURRENCY:-64}

cargo build --release --locked -p subscription-service -p payment-service -p gateway-simulator -p billing-bench --bins
./scripts/env-manager.sh -e development start -s postgres >/dev/null
./scripts/env-manager.sh -e development start -s redis >/dev/null
set -a; . .run/development/ports.env; set +a
export APP_ENV=development SUBSCRIPTION_PORT=8101 LOG_LEVEL=warn HTTP_WORKERS=${HTTP_WORKERS:-2}
# A bench configuration, not a weaker default: every bench customer signs up from this one address.
export RATE_LIMIT_REGISTRATIONS_PER_HOUR=1000000 RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN=1000000
# Every key this run writes is under its prefixes, deleted at the end: kept, a few runs' usage idempotency keys
# (hundreds of thousands each) made the development Redis's background saves write gigabytes during later runs.
export REDIS_KEY_PREFIX="bench:$(date +%s):routes:"
PREFIXES=("$REDIS_KEY_PREFIX")
forget_prefixes() { bench/forget-redis-keys.sh "$REDIS_PORT" "${PREFIXES[@]}"; }
$BIN/subscription-service seed >/dev/null
$BIN/subscription-service serve > .run/development/logs/bench-service.log 2>&1 &
SERVICE=$!
trap 'kill $SERVICE 2>/dev/null || true; wait $SERVICE 2>/dev/null || true; forget_prefixes' EXIT
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8101/v1/health/detailed >/dev/null && break; sleep 0.1; done

echo "| route | connections | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|---|"
for scenario in subscriptions-me usage-use; do
  ./target/release/loadgen --url http://127.0.0.1:8101 --scenario "$scenario" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_RUN"
done

echo
echo "Queues (one Redis, no-op handler):"
echo
./target/release/queuebench --redis "redis://127.0.0.1:$REDIS_PORT/0" --jobs "${QUEUE_JOBS:-100000}" --concurrency "$CONCURRENCY"

echo
echo "Payments end to end (POST /v1/payments/process → subscription active), all four processes running:"
echo
# A fresh key prefix: the registration rate limit of earlier runs does not apply, and queues start empty.
REDIS_KEY_PREFIX="bench:$(date +%s):payments:"
PREFIXES+=("$REDIS_KEY_PREFIX")
export REDIS_KEY_PREFIX PAYMENT_PORT=8102 SUBSCRIPTION_SERVICE_URL=http://127.0.0.1:8101 PAYMENT_SERVICE_URL=http://127.0.0.1:8102
export GATEWAY_PORT=8103 GATEWAY_URL=http://127.0.0.1:8103 GATEWAY_SIMULATOR_JOURNAL=".run/development/bench-gateway-$(date +%s).jsonl"
kill $SERVICE 2>/dev/null || true; wait $SERVICE 2>/dev/null || true
$BIN/subscription-service serve > .run/development/logs/bench-subscription.log 2>&1 & SUB_PID=$!
$BIN/subscription-service worker > .run/development/logs/bench-subscription-worker.log 2>&1 & SUBW_PID=$!
$BIN/payment-service serve > .run/development/logs/bench-payment.log 2>&1 & PAY_PID=$!
$BIN/payment-service worker > .run/development/logs/bench-payment-worker.log 2>&1 & PAYW_PID=$!
$BIN/gateway-simulator > .run/development/logs/bench-gateway.log 2>&1 & GW_PID=$!
trap 'kill $SUB_PID $SUBW_PID $PAY_PID $PAYW_PID $GW_PID 2>/dev/null || true; wait 2>/dev/null || true; forget_prefixes' EXIT
for url in http://127.0.0.1:8103 http://127.0.0.1:8101 http://127.0.0.1:8102; do
  for _ in $(seq 1 100); do curl -fs "$url/v1/health/detailed" >/dev/null && break; sleep 0.1; done
done
# The database work per payment: transactions committed (or rolled back) in each service's database, and the
# CPU of every PostgreSQL process, over the run, divided by the payments made.
PSQL="/usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p $PG_PORT -U billing -d postgres -tA"
export PGPASSWORD=dev-only-password
xacts() { $PSQL -c "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database WHERE datname LIKE 'billing_%' ORDER BY 1" | tr '\n' ' '; }
# CPU ticks (user + system) of every process named $1.
ticks_of() { for pid in $(pgrep -x "$1"); do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
pg_ticks() { ticks_of postgres; }
# CPU ticks (user + system) of each of the bench's processes (the load generator's: see `with_cpu`).
process_ticks() {
  local name pid
  for name in subscription:$SUB_PID subscription-worker:$SUBW_PID payment:$PAY_PID payment-worker:$PAYW_PID gateway:$GW_PID; do
    pid=${name#*:}
    echo -n "${name%%:*}=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) "
  done
  echo "redis=$(ticks_of redis-server)"
}
# Runs a command and writes the CPU ticks it used (with its children) to the file named first.
with_cpu() {
  local out=$1; shift
  python3 -c 'import os, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(str(round((r.ru_utime + r.ru_stime) * os.sysconf("SC_CLK_TCK"))))
sys.exit(code)' "$out" "$@"
}
per_payment() {  # before/after transactions and PostgreSQL ticks, and the payments made in between
  python3 - "$@" "$(getconf CLK_TCK)" <<'PY'
import sys
before, after, t0, t1, payments, tick = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
parse = lambda s: dict((p.split("|")[0], int(p.split("|")[1])) for p in s.split())
b, a = parse(before), parse(after)
for db in sorted(a):
    print(f"- {db}: {(a[db] - b.get(db, 0)) / max(payments, 1):.1f} transactions per payment")
print(f"- all: {sum(a[d] - b.get(d, 0) for d in a) / max(payments, 1):.1f} transactions, "
      f"{(t1 - t0) * 1000 / tick / max(payments, 1):.2f} PostgreSQL core-ms per payment")
PY
}
$PSQL -c "SELECT pg_stat_clear_snapshot()" >/dev/null
BEFORE_X=$(xacts); BEFORE_T=$(pg_ticks)
ROW=$(./target/release/paybench --subscription-url http://127.0.0.1:8101 --payment-url http://127.0.0.1:8102 --customers "${PAY_CUSTOMERS:-16}" --seconds "${SECONDS_PER_RUN}")
echo "$ROW"
sleep 1  # the statistics collector reports at most every 500 ms
AFTER_X=$(xacts); AFTER_T=$(pg_ticks)
PAYMENTS=$(echo "$ROW" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
echo
echo "Database work per payment ($PAYMENTS payments; each iteration also creates and cancels a subscription):"
per_payment "$BEFORE_X" "$AFTER_X" "$BEFORE_T" "$AFTER_T" "$PAYMENTS"

echo
echo "Payments alone (subscriptions prepared first; their payments, then a wait until every one is active):"
echo
PREPARED=".run/development/paybench-prepared.json"
./target/release/paybench --subscription-url http://127.0.0.1:8101 --payment-url http://127.0.0.1:8102 \
  --customers "${PAY_CUSTOMERS:-16}" --prepare "${PAY_PREPARED:-100}" --file "$PREPARED"
sleep 2  # the preparation's last writes are counted before, not in, the window below
$PSQL -c "SELECT pg_stat_clear_snapshot()" >/dev/null
BEFORE_X=$(xacts); BEFORE_T=$(pg_ticks); BEFORE_P=$(process_ticks)
ROW=$(with_cpu .run/development/paybench.ticks ./target/release/paybench --subscription-url http://127.0.0.1:8101 \
  --payment-url http://127.0.0.1:8102 --customers "${PAY_CUSTOMERS:-16}" --pay-from "$PREPARED" \
  2> .run/development/paybench-prepared.polls)
echo "$ROW"
sleep 1
AFTER_X=$(xacts); AFTER_T=$(pg_ticks); AFTER_P=$(process_ticks)
PAYMENTS=$(echo "$ROW" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
echo
echo "Database work per payment ($PAYMENTS payments, and the final status reads: $(cat .run/development/paybench-prepared.polls)):"
per_payment "$BEFORE_X" "$AFTER_X" "$BEFORE_T" "$AFTER_T" "$PAYMENTS"
echo
echo "CPU per payment of every process in that window (core-ms; the load generator is paybench):"
python3 - "$BEFORE_P" "$AFTER_P" "$BEFORE_T" "$AFTER_T" "$PAYMENTS" "$(getconf CLK_TCK)" \
  "$(cat .run/development/paybench.ticks)" <<'PY'
import sys
before, after = (dict(p.split("=") for p in s.split()) for s in sys.argv[1:3])
pg, payments, tick = int(sys.argv[4]) - int(sys.argv[3]), max(int(sys.argv[5]), 1), int(sys.argv[6])
rows = [(name, int(after[name]) - int(before[name])) for name in after] + [("postgres", pg)]
rows.append(("paybench (load generator)", int(sys.argv[7])))
total = sum(t for _, t in rows)
for name, t in rows:
    print(f"- {name}: {t * 1000 / tick / payments:.2f}")
print(f"- all: {total * 1000 / tick / payments:.2f} core-ms per payment")
PY
