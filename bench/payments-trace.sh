#!/usr/bin/env bash
# The database work of one payment, step by step: one customer pays in a loop (paybench, 1 customer) against all
# four processes and the gateway simulator while the development PostgreSQL logs every statement; bench/pgtrace.py
# then groups the log into transactions and names the step of each. Prints one Markdown table.
#   BIN_DIR   the services to trace (default target/release, built here); point it at another build to compare
#             (the load, paybench, is always this checkout's)
#   SECONDS_PER_RUN (5)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN_DIR=${BIN_DIR:-target/release}
if [[ "$BIN_DIR" == target/release ]]; then
  cargo build --release --locked -p subscription-service -p payment-service -p gateway-simulator -p billing-bench --bins
else
  cargo build --release --locked -p billing-bench --bin paybench
fi
./scripts/env-manager.sh -e development start -s postgres >/dev/null
./scripts/env-manager.sh -e development start -s redis >/dev/null
set -a; . .run/development/ports.env; set +a
export PGPASSWORD=dev-only-password
PSQL="/usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p $PG_PORT -U billing -d postgres -tA"
OUT=.run/bench; mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
# A bench configuration, not a weaker default: the bench customer signs up from this one address.
export APP_ENV=development LOG_LEVEL=warn HTTP_WORKERS=2
export RATE_LIMIT_REGISTRATIONS_PER_HOUR=1000000 RATE_LIMIT_LOGIN_ATTEMPTS_PER_15_MIN=1000000
export REDIS_KEY_PREFIX="trace:$STAMP:" SUBSCRIPTION_PORT=8101 PAYMENT_PORT=8102
export SUBSCRIPTION_SERVICE_URL=http://127.0.0.1:8101 PAYMENT_SERVICE_URL=http://127.0.0.1:8102
export GATEWAY_PORT=8103 GATEWAY_URL=http://127.0.0.1:8103 GATEWAY_SIMULATOR_JOURNAL="$OUT/trace-gateway-$STAMP.jsonl"
"$BIN_DIR/subscription-service" seed >/dev/null
"$BIN_DIR/subscription-service" serve > "$OUT/trace-subscription.log" 2>&1 & P1=$!
"$BIN_DIR/subscription-service" worker > "$OUT/trace-subscription-worker.log" 2>&1 & P2=$!
"$BIN_DIR/payment-service" serve > "$OUT/trace-payment.log" 2>&1 & P3=$!
"$BIN_DIR/payment-service" worker > "$OUT/trace-payment-worker.log" 2>&1 & P4=$!
"$BIN_DIR/gateway-simulator" > "$OUT/trace-gateway.log" 2>&1 & P5=$!
reset_logging() {
  $PSQL -c "ALTER SYSTEM RESET log_statement" -c "ALTER SYSTEM RESET log_line_prefix" -c "SELECT pg_reload_conf()" >/dev/null
}
trap 'kill $P1 $P2 $P3 $P4 $P5 2>/dev/null || true; wait 2>/dev/null || true; reset_logging
  bench/forget-redis-keys.sh "$REDIS_PORT" "$REDIS_KEY_PREFIX"' EXIT
for url in http://127.0.0.1:8103 http://127.0.0.1:8101 http://127.0.0.1:8102; do
  for _ in $(seq 1 100); do curl -fs "$url/v1/health/detailed" >/dev/null && break; sleep 0.1; done
done
LOG=$(readlink -f .run/development/logs/postgres.log)
$PSQL -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_line_prefix = '@@ %d %p '" \
  -c "SELECT pg_reload_conf()" >/dev/null
sleep 1  # every backend has read the new settings
START=$(($(wc -l < "$LOG") + 1))
ROW=$(./target/release/paybench --customers 1 --seconds "${SECONDS_PER_RUN:-5}" 2> "$OUT/trace-$STAMP.polls")
sleep 1  # the last webhook's delivery is logged by the worker after the subscription turned active
reset_logging
tail -n +"$START" "$LOG" > "$OUT/trace-$STAMP.log"
echo "$ROW"
PAYMENTS=$(echo "$ROW" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
echo
# The bench's own reads of a subscription by id: its polls, and the one its cancel request makes (one per payment).
POLLS=$(grep -o 'polls=[0-9]*' "$OUT/trace-$STAMP.polls" | cut -d= -f2)
python3 bench/pgtrace.py "$OUT/trace-$STAMP.log" "$PAYMENTS" "--polls=$((POLLS + PAYMENTS))"
