#!/usr/bin/env bash
# env-manager.sh — run any environment of the billing backend.
#
#   ./scripts/env-manager.sh -e development start     # the whole system, from nothing
#   ./scripts/env-manager.sh -e test test             # every test, against private PostgreSQL and Redis
#
# With a Docker engine it drives docker compose; without one it runs local processes: PostgreSQL and Redis
# from the OS packages (installed when missing), with their data, ports, pid files and logs under .run/<env>/.
# It never touches a PostgreSQL or Redis it did not start.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_NAME=development
SERVICE=""
ACTION=""
EXTRA_ARGS=()

SERVICES=(subscription-service payment-service)
# process name -> "binary subcommand"
declare -A PROC_CMD=(
  [subscription-service]="subscription-service serve"
  [subscription-worker]="subscription-service worker"
  [payment-service]="payment-service serve"
  [payment-worker]="payment-service worker"
  [gateway-simulator]="gateway-simulator"
)
# The gateway simulator runs where there is no real gateway (development and test); deployed environments call one.
PROCS=(gateway-simulator subscription-service subscription-worker payment-service payment-worker)
declare -A HEALTH_PORT=([subscription-service]=8001 [payment-service]=8002 [gateway-simulator]=8003)

# ---------------------------------------------------------------------------------------------- output
if [[ -t 1 ]]; then BOLD=$'\e[1m'; RED=$'\e[31m'; GREEN=$'\e[32m'; YELLOW=$'\e[33m'; RESET=$'\e[0m'
else BOLD=""; RED=""; GREEN=""; YELLOW=""; RESET=""; fi
info() { printf '%s==>%s %s\n' "$BOLD" "$RESET" "$*"; }
ok()   { printf '%s ok%s  %s\n' "$GREEN" "$RESET" "$*"; }
warn() { printf '%swarn%s %s\n' "$YELLOW" "$RESET" "$*" >&2; }
die()  { printf '%serror:%s %s\n' "$RED" "$RESET" "$*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: $(basename "$0") -e <environment> [-s <service>] <action> [-- extra args]

Environments: development, staging, production, test
Options:
  -e, --env ENV        environment to act on (default: development)
  -s, --service NAME   one process: subscription-service, subscription-worker, payment-service,
                       payment-worker, postgres, redis (for logs, start, stop, restart)
  -h, --help           this help

Actions:
  start      bring the environment up (databases, migrations, seed, services, workers) and wait for health
  stop       stop everything this script started for the environment (nothing is left running)
  restart    stop, then start
  status     each process with its pid and health
  logs       follow the logs (all, or one with -s NAME)
  build      build the binaries (release for staging/production)
  migrate    create the databases if missing and apply pending migrations
  seed       load the seed catalog and create the development admin (development/test only)
  validate   load and validate the configuration of both services for the environment
  secrets    generate strong secrets for staging/production into .run/<env>/secrets.env
  deploy     validate, build, migrate and start (docker compose when an engine answers)
  test       start private PostgreSQL and Redis, run the whole test suite, tear them down
  help       this help

Without a Docker engine everything runs as local processes; data, ports, pids and logs live in .run/<env>/.
EOF
}

# ---------------------------------------------------------------------------------------------- arguments
while [[ $# -gt 0 ]]; do
  case "$1" in
    -e|--env) [[ $# -ge 2 ]] || die "$1 needs a value"; ENV_NAME=$2; shift 2 ;;
    -s|--service) [[ $# -ge 2 ]] || die "$1 needs a value"; SERVICE=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA_ARGS=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) if [[ -z "$ACTION" ]]; then ACTION=$1; else EXTRA_ARGS+=("$1"); fi; shift ;;
  esac
done
[[ -n "$ACTION" ]] || { usage; exit 1; }
case "$ENV_NAME" in development|staging|production|test) ;; *) die "unknown environment '$ENV_NAME' (development, staging, production, test)" ;; esac
if [[ -n "$SERVICE" ]]; then
  case "$SERVICE" in postgres|redis|subscription-service|subscription-worker|payment-service|payment-worker|gateway-simulator) ;;
    *) die "unknown service '$SERVICE' (subscription-service, subscription-worker, payment-service, payment-worker, gateway-simulator, postgres, redis)" ;;
  esac
fi

RUN_DIR="$ROOT/.run/$ENV_NAME"
PID_DIR="$RUN_DIR/pids"
LOG_DIR="$RUN_DIR/logs"
PORTS_FILE="$RUN_DIR/ports.env"
SECRETS_FILE="$RUN_DIR/secrets.env"
CONFIG_DIR="$ROOT/config/environments"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
is_deployed() { [[ "$ENV_NAME" == staging || "$ENV_NAME" == production ]]; }
if is_deployed; then PROFILE=release; else PROFILE=debug; fi
BIN_DIR="$TARGET_DIR/$PROFILE"

# A value from the environment's file (falling back to base.env), before substitution.
config_value() {
  local key=$1 file value=""
  for file in "$CONFIG_DIR/base.env" "$CONFIG_DIR/$ENV_NAME.env"; do
    [[ -f "$file" ]] || continue
    local line
    line=$(grep -E "^(export )?$key=" "$file" | tail -n 1 || true)
    [[ -n "$line" ]] && value=${line#*=}
  done
  printf '%s' "$value"
}

# ---------------------------------------------------------------------------------------------- docker
use_docker() {
  [[ "${BILLING_MODE:-}" == local ]] && return 1
  [[ "$ENV_NAME" == test ]] && return 1
  command -v docker >/dev/null 2>&1 || return 1
  timeout 5 docker info >/dev/null 2>&1 || return 1
  docker compose version >/dev/null 2>&1 || return 1
}
compose_file() { if is_deployed; then echo "$ROOT/docker-compose.production.yml"; else echo "$ROOT/docker-compose.development.yml"; fi; }
compose() { docker compose -f "$(compose_file)" -p "billing-$ENV_NAME" "$@"; }

# ---------------------------------------------------------------------------------------------- packages
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "cannot install $*: no apt-get here. Install them with your package manager and retry."
  info "installing $* from the OS packages"
  as_root true || die "cannot install $*: need root or passwordless sudo. Run: sudo apt-get install -y $*"
  # Only our private cluster is wanted: stop the package from creating and starting a system one.
  if [[ " $* " == *" postgresql "* && ! -f /etc/postgresql-common/createcluster.conf ]]; then
    as_root mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || warn "apt-get update failed; trying the install anyway"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed. Install them by hand and retry."
}

find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

ensure_packages() {
  local missing=()
  find_pg_bin >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # The test suite runs the production proxy configuration (config/nginx) in front of a service.
  if [[ "$ENV_NAME" == test ]] && ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    missing+=(nginx-light)
  fi
  [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
  PG_BIN=$(find_pg_bin) || die "PostgreSQL server binaries not found after install (looked in /usr/lib/postgresql/*/bin)"
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found after install"
}

ensure_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
}

# ---------------------------------------------------------------------------------------------- ports
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port_from() {
  local port=$1
  while port_in_use "$port"; do port=$((port + 1)); done
  echo "$port"
}

# Ports are chosen once per environment and kept in .run/<env>/ports.env.
load_ports() {
  mkdir -p "$RUN_DIR" "$PID_DIR" "$LOG_DIR"
  if [[ -f "$PORTS_FILE" ]]; then
    # shellcheck disable=SC1090
    source "$PORTS_FILE"
  fi
  PG_PORT=${PG_PORT:-$(config_value PG_PORT)}
  REDIS_PORT=${REDIS_PORT:-$(config_value REDIS_PORT)}
  PG_PORT=${PG_PORT:-55432}
  REDIS_PORT=${REDIS_PORT:-56379}
}

pick_ports() {
  load_ports
  if ! pg_running && port_in_use "$PG_PORT"; then
    local p; p=$(free_port_from $((PG_PORT + 1))); warn "port $PG_PORT is taken by another program; PostgreSQL will use $p"; PG_PORT=$p
  fi
  if ! redis_running && port_in_use "$REDIS_PORT"; then
    local p; p=$(free_port_from $((REDIS_PORT + 1))); warn "port $REDIS_PORT is taken by another program; Redis will use $p"; REDIS_PORT=$p
  fi
  printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$PG_PORT" "$REDIS_PORT" > "$PORTS_FILE"
}

# The environment every process of this script runs with.
export_runtime_env() {
  export APP_ENV="$ENV_NAME" CONFIG_DIR
  if ! is_deployed; then
    export PG_PORT REDIS_PORT
    # The simulator's durable state lives with the environment's other data.
    export GATEWAY_SIMULATOR_JOURNAL="$RUN_DIR/gateway/journal.jsonl"
  fi
  # shellcheck disable=SC1090  # written by the secrets action
  if [[ -f "$SECRETS_FILE" ]]; then set -a; source "$SECRETS_FILE"; set +a; fi
}

# ---------------------------------------------------------------------------------------------- postgres
pg_root() {
  if [[ -L "$RUN_DIR/pg" || -d "$RUN_DIR/pg" ]]; then readlink -f "$RUN_DIR/pg"; return; fi
  echo "$RUN_DIR/pg"
}

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

prepare_pg_dirs() {
  PG_OS_USER=$(id -un)
  if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root: it runs as the postgres system user.
    PG_OS_USER=postgres
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  local root; root=$(pg_root)
  if [[ ! -e "$root" ]]; then
    mkdir -p "$RUN_DIR/pg"
    root="$RUN_DIR/pg"
    if [[ $(id -u) -eq 0 ]]; then
      chown "$PG_OS_USER" "$root"
      if ! runuser -u "$PG_OS_USER" -- test -w "$root" 2>/dev/null; then
        # A parent directory is closed to the postgres user: keep the data outside, linked from .run/.
        rmdir "$root"
        local outside
        outside="/var/tmp/billing-pg-$(printf '%s' "$ROOT" | sha1sum | cut -c1-10)-$ENV_NAME"
        mkdir -p "$outside"; chown "$PG_OS_USER" "$outside"; chmod 700 "$outside"
        ln -s "$outside" "$RUN_DIR/pg"
        root=$outside
      fi
    fi
  fi
  PG_ROOT=$root
  PG_DATA="$PG_ROOT/data"
  PG_SOCK="$PG_ROOT/sock"
  PG_LOG="$PG_ROOT/postgres.log"
}

pg_running() {
  local root; root=$(pg_root)
  [[ -f "$root/data/postmaster.pid" ]] || return 1
  local pid; pid=$(head -n 1 "$root/data/postmaster.pid" 2>/dev/null || true)
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

start_postgres() {
  prepare_pg_dirs
  if pg_running; then ok "postgres already running on port $PG_PORT"; return; fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    info "initialising a private PostgreSQL cluster in $PG_DATA"
    as_pg mkdir -p "$PG_DATA" "$PG_SOCK"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U billing --auth=trust --encoding=UTF8 --no-locale >"$LOG_DIR/initdb.log" 2>&1 \
      || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  as_pg mkdir -p "$PG_SOCK"
  local opts="-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=128MB"
  if [[ "$ENV_NAME" == test ]]; then
    # Throw-away data: durability is traded for speed.
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  info "starting postgres on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "$opts" -w -t 60 start >/dev/null \
    || { tail -n 20 "$PG_LOG" >&2 || true; die "postgres did not start (log: $PG_LOG)"; }
  ln -sf "$PG_LOG" "$LOG_DIR/postgres.log"
  ok "postgres running on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  pg_running || return 0
  prepare_pg_dirs
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  if pg_running; then
    local pid; pid=$(head -n 1 "$PG_DATA/postmaster.pid")
    kill -KILL "$pid" 2>/dev/null || true
  fi
  ok "postgres stopped"
}

# ---------------------------------------------------------------------------------------------- redis
redis_pid() { cat "$PID_DIR/redis.pid" 2>/dev/null || true; }
redis_running() { local pid; pid=$(redis_pid); [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }

start_redis() {
  if redis_running; then ok "redis already running on port $REDIS_PORT"; return; fi
  mkdir -p "$RUN_DIR/redis"
  local persist=(--appendonly yes --appendfsync everysec)
  [[ "$ENV_NAME" == test ]] && persist=(--appendonly no)
  info "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --dir "$RUN_DIR/redis" \
    --daemonize yes --pidfile "$PID_DIR/redis.pid" --logfile "$LOG_DIR/redis.log" --save "" "${persist[@]}" \
    || die "redis-server did not start (log: $LOG_DIR/redis.log)"
  local _
  for _ in $(seq 1 100); do
    redis_running && port_in_use "$REDIS_PORT" && { ok "redis running on 127.0.0.1:$REDIS_PORT"; return; }
    sleep 0.1
  done
  die "redis did not start (log: $LOG_DIR/redis.log)"
}

stop_redis() {
  redis_running || { rm -f "$PID_DIR/redis.pid"; return 0; }
  local pid; pid=$(redis_pid)
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PID_DIR/redis.pid"
  ok "redis stopped"
}

# ---------------------------------------------------------------------------------------------- services
wait_gone() {
  local pid=$1 secs=$2 _
  for _ in $(seq 1 $((secs * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

proc_pid() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }
proc_running() { local pid; pid=$(proc_pid "$1"); [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }

build() {
  ensure_cargo
  local flags=()
  [[ "$PROFILE" == release ]] && flags+=(--release)
  info "building the service binaries ($PROFILE)"
  (cd "$ROOT" && cargo build "${flags[@]}" --locked -p subscription-service -p payment-service -p gateway-simulator --bins) \
    || die "cargo build failed"
}

ensure_built() {
  [[ -x "$BIN_DIR/subscription-service" && -x "$BIN_DIR/payment-service" && -x "$BIN_DIR/gateway-simulator" ]] || build
}

start_proc() {
  local name=$1
  if proc_running "$name"; then ok "$name already running (pid $(proc_pid "$name"))"; return; fi
  local -a cmd
  read -r -a cmd <<<"${PROC_CMD[$name]}"
  local port=${HEALTH_PORT[$name]:-}
  if [[ -n "$port" ]] && port_in_use "$port"; then
    die "port $port is already taken by another program; $name cannot listen there"
  fi
  ( cd "$ROOT" && exec setsid "$BIN_DIR/${cmd[0]}" "${cmd[@]:1}" >>"$LOG_DIR/$name.log" 2>&1 </dev/null ) &
  echo $! > "$PID_DIR/$name.pid"
  ok "$name started (pid $!, log .run/$ENV_NAME/logs/$name.log)"
}

stop_proc() {
  local name=$1 pid
  pid=$(proc_pid "$name")
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$PID_DIR/$name.pid"; return 0; fi
  # Each process leads its own group (setsid): signal the group so nothing is left behind.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 30; then
    warn "$name did not stop within 30 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || true
  fi
  rm -f "$PID_DIR/$name.pid"
  ok "$name stopped"
}

http_code() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true; }

wait_healthy() {
  local name=$1 port=${HEALTH_PORT[$1]} secs=${2:-120} _ code=""
  for _ in $(seq 1 $((secs * 4))); do
    proc_running "$name" || { tail -n 30 "$LOG_DIR/$name.log" >&2 || true; die "$name exited during start (log: .run/$ENV_NAME/logs/$name.log)"; }
    code=$(http_code "http://127.0.0.1:$port/v1/health/detailed")
    [[ "$code" == 200 ]] && { ok "$name healthy (http://127.0.0.1:$port/v1/health/detailed)"; return 0; }
    sleep 0.25
  done
  tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  die "$name did not become healthy within ${secs}s (last status: ${code:-no answer})"
}

run_migrations() {
  local svc
  for svc in "${SERVICES[@]}"; do
    info "migrating $svc"
    (cd "$ROOT" && "$BIN_DIR/$svc" migrate) || die "$svc migrate failed"
  done
}

run_seed() {
  is_deployed && die "seed loads development data only; it never runs in $ENV_NAME"
  info "seeding"
  (cd "$ROOT" && "$BIN_DIR/subscription-service" seed) || die "seed failed"
}

print_urls() {
  cat <<EOF

${BOLD}$ENV_NAME is up${RESET}
  Subscription service  http://127.0.0.1:8001    docs http://127.0.0.1:8001/docs/   health http://127.0.0.1:8001/v1/health/detailed
  Payment service       http://127.0.0.1:8002    docs http://127.0.0.1:8002/docs/   health http://127.0.0.1:8002/v1/health/detailed
  Metrics               http://127.0.0.1:8001/metrics, http://127.0.0.1:8002/metrics
EOF
  if ! is_deployed; then cat <<EOF
  Gateway simulator     http://127.0.0.1:8003    (Stripe-shaped API; state in .run/$ENV_NAME/gateway/)
EOF
  fi
  if ! is_deployed; then cat <<EOF
  PostgreSQL            postgres://billing@127.0.0.1:$PG_PORT/billing_subscription (and billing_payment)
  Redis                 redis://127.0.0.1:$REDIS_PORT/0
  Logs                  .run/$ENV_NAME/logs/   (./scripts/env-manager.sh -e $ENV_NAME logs -s NAME)
  Stop                  ./scripts/env-manager.sh -e $ENV_NAME stop
EOF
  fi
}

# ---------------------------------------------------------------------------------------------- actions
do_start() {
  if use_docker; then compose_up; return; fi
  is_deployed && die "$ENV_NAME runs against its own PostgreSQL and Redis: use 'deploy' (validates first)"
  ensure_packages
  pick_ports
  export_runtime_env
  if [[ -n "$SERVICE" ]]; then start_one "$SERVICE"; return; fi
  build
  start_postgres
  start_redis
  run_migrations
  run_seed
  start_processes
}

compose_up() {
  info "starting $ENV_NAME with docker compose ($(basename "$(compose_file)"))"
  compose up -d --build
  local name; for name in "${SERVICES[@]}"; do wait_http_only "$name"; done
  print_urls
}

# Both services and both workers, then wait until the services are healthy and the workers still alive.
start_processes() {
  local name
  for name in "${PROCS[@]}"; do
    [[ "$name" == gateway-simulator ]] && is_deployed && continue
    start_proc "$name"
  done
  is_deployed || wait_healthy gateway-simulator
  for name in "${SERVICES[@]}"; do wait_healthy "$name"; done
  for name in subscription-worker payment-worker; do
    proc_running "$name" || { tail -n 30 "$LOG_DIR/$name.log" >&2 || true; die "$name exited during start"; }
  done
  print_urls
}

wait_http_only() {
  local name=$1 port=${HEALTH_PORT[$1]} _
  for _ in $(seq 1 480); do
    [[ $(http_code "http://127.0.0.1:$port/v1/health/detailed") == 200 ]] && { ok "$name healthy"; return 0; }
    sleep 0.25
  done
  die "$name did not become healthy"
}

start_one() {
  case "$1" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    *)
      ensure_built
      start_proc "$1"
      if [[ -n "${HEALTH_PORT[$1]:-}" ]]; then wait_healthy "$1"; fi
      ;;
  esac
}

do_stop() {
  if use_docker; then compose down; return; fi
  load_ports
  if [[ -n "$SERVICE" ]]; then
    case "$SERVICE" in
      postgres) PG_BIN=$(find_pg_bin) || die "PostgreSQL binaries not found"; stop_postgres ;;
      redis) stop_redis ;;
      *) stop_proc "$SERVICE" ;;
    esac
    return
  fi
  local name
  for name in "${PROCS[@]}"; do stop_proc "$name"; done
  stop_redis
  if [[ -e "$RUN_DIR/pg" ]]; then PG_BIN=$(find_pg_bin || true); [[ -n "$PG_BIN" ]] && stop_postgres; fi
  ok "$ENV_NAME stopped"
}

do_status() {
  if use_docker; then compose ps; return; fi
  load_ports
  printf '%-22s %-8s %-9s %s\n' PROCESS PID STATE HEALTH
  local pid state health
  pid=$(head -n 1 "$(pg_root)/data/postmaster.pid" 2>/dev/null || echo -)
  if pg_running; then state=running; health="127.0.0.1:$PG_PORT"; else state=stopped; pid=-; health=-; fi
  printf '%-22s %-8s %-9s %s\n' postgres "$pid" "$state" "$health"
  pid=$(redis_pid); [[ -n "$pid" ]] || pid=-
  if redis_running; then state=running; health="127.0.0.1:$REDIS_PORT"; else state=stopped; pid=-; health=-; fi
  printf '%-22s %-8s %-9s %s\n' redis "$pid" "$state" "$health"
  local name code
  for name in "${PROCS[@]}"; do
    pid=$(proc_pid "$name"); health=-
    if proc_running "$name"; then
      state=running
      if [[ -n "${HEALTH_PORT[$name]:-}" ]]; then
        code=$(http_code "http://127.0.0.1:${HEALTH_PORT[$name]}/v1/health/detailed")
        case "$code" in 200) health="healthy (http://127.0.0.1:${HEALTH_PORT[$name]})" ;; 503) health="unhealthy (503)" ;; *) health="no answer" ;; esac
      else
        health="alive"
      fi
    else
      state=stopped; pid=-
    fi
    printf '%-22s %-8s %-9s %s\n' "$name" "$pid" "$state" "$health"
  done
}

do_logs() {
  if use_docker; then compose logs -f ${SERVICE:+"$SERVICE"}; return; fi
  mkdir -p "$LOG_DIR"
  if [[ -n "$SERVICE" ]]; then
    local file="$LOG_DIR/$SERVICE.log"
    [[ -e "$file" ]] || die "no log for $SERVICE yet ($file)"
    exec tail -n 200 -F "$file"
  fi
  shopt -s nullglob
  local files=("$LOG_DIR"/*.log)
  [[ ${#files[@]} -gt 0 ]] || die "no logs yet in $LOG_DIR"
  exec tail -n 50 -F "${files[@]}"
}

do_migrate() {
  if use_docker; then compose run --rm migrate; return; fi
  ensure_built
  if ! is_deployed; then
    load_ports
    pg_running || die "postgres is not running for $ENV_NAME (start it with: $0 -e $ENV_NAME start)"
  fi
  export_runtime_env
  run_migrations
}

do_seed() {
  ensure_built
  if ! is_deployed; then load_ports; pg_running || die "postgres is not running for $ENV_NAME (start it first)"; fi
  export_runtime_env
  run_seed
}

do_validate() {
  # Validation is the same code in every build profile: use whichever binaries exist.
  local dir=""
  for dir in "$BIN_DIR" "$TARGET_DIR/release" "$TARGET_DIR/debug"; do
    [[ -x "$dir/subscription-service" && -x "$dir/payment-service" ]] && break
    dir=""
  done
  if [[ -z "$dir" ]]; then ensure_built; dir=$BIN_DIR; fi
  export_runtime_env
  local svc failed=0
  for svc in "${SERVICES[@]}"; do
    if (cd "$ROOT" && "$dir/$svc" check-config); then :; else failed=1; fi
  done
  [[ $failed -eq 0 ]] || die "the $ENV_NAME configuration is invalid (see the key named above)"
  ok "the $ENV_NAME configuration is valid"
}

do_secrets() {
  is_deployed || die "development and test use the public development secrets in config/environments/$ENV_NAME.env"
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  mkdir -p "$RUN_DIR"
  if [[ -f "$SECRETS_FILE" && "${EXTRA_ARGS[*]:-}" != *--force* ]]; then
    die "$SECRETS_FILE exists; rotate with: $0 -e $ENV_NAME secrets -- --force (keep the old values listed second while rotating)"
  fi
  local tmp; tmp=$(mktemp -d)
  openssl genpkey -algorithm ed25519 -outform DER -out "$tmp/jwt.der" 2>/dev/null
  openssl pkey -inform DER -in "$tmp/jwt.der" -pubout -outform DER -out "$tmp/jwt.pub.der" 2>/dev/null
  (
    umask 077
    cat > "$SECRETS_FILE" <<EOF
# Generated $(date -u +%Y-%m-%dT%H:%M:%SZ) by env-manager.sh secrets for $ENV_NAME. Keep it out of version control.
# Give JWT_PRIVATE_KEY to the subscription service only; the payment service needs only JWT_PUBLIC_KEY.
JWT_PRIVATE_KEY=$(base64 -w0 "$tmp/jwt.der")
JWT_PUBLIC_KEY=$(base64 -w0 "$tmp/jwt.pub.der")
WEBHOOK_SECRETS=$(openssl rand -hex 32)
INTERNAL_SUB_TO_PAY_SECRETS=$(openssl rand -hex 32)
INTERNAL_PAY_TO_SUB_SECRETS=$(openssl rand -hex 32)
GATEWAY_WEBHOOK_SECRETS=$(openssl rand -hex 32)
REDIS_PASSWORD=$(openssl rand -hex 32)
EOF
  )
  rm -rf "$tmp"
  ok "wrote $SECRETS_FILE (mode 600); validate and deploy load it. Still needed from the environment: PG_HOST, PG_PASSWORD, REDIS_HOST, SUBSCRIPTION_HOST, PAYMENT_HOST (the Redis server must require REDIS_PASSWORD)"
}

do_deploy() {
  do_validate
  if use_docker; then compose_up; return; fi
  is_deployed || die "deploy is for staging and production; use start for $ENV_NAME"
  build
  export_runtime_env
  mkdir -p "$PID_DIR" "$LOG_DIR"
  run_migrations
  start_processes
}

do_test() {
  [[ "$ENV_NAME" == test ]] || die "tests run in the test environment: $0 -e test test"
  ensure_cargo
  ensure_packages
  # A clean slate each run: the previous run's databases and keys are gone.
  SERVICE=""
  do_stop >/dev/null 2>&1 || true
  local old_root; old_root=$(pg_root)
  rm -rf "$RUN_DIR"
  [[ "$old_root" == /var/tmp/billing-pg-* ]] && rm -rf "$old_root"
  pick_ports
  export_runtime_env
  trap 'info "tearing down the test PostgreSQL and Redis"; do_stop >/dev/null 2>&1 || true' EXIT
  start_postgres
  start_redis
  # A one-off build gains nothing from incremental state, which is a fifth of target/ on a clean clone.
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
  local free_mb; free_mb=$(df -Pm "$ROOT" 2>/dev/null | awk 'NR==2 {print $4}')
  [[ -n "$free_mb" && "$free_mb" -lt 3072 ]] \
    && warn "only ${free_mb} MiB free on the disk of $ROOT; a clean test build needs about 2 GiB"
  info "running the test suite"
  local rc=0
  if cargo nextest --version >/dev/null 2>&1; then
    (cd "$ROOT" && cargo nextest run --workspace --no-fail-fast "${EXTRA_ARGS[@]}") || rc=$?
  else
    (cd "$ROOT" && cargo test --workspace --no-fail-fast "${EXTRA_ARGS[@]}") || rc=$?
  fi
  # The whole suite (no filter given): also fuzz both running services from their OpenAPI documents.
  if [[ $rc -eq 0 && ${#EXTRA_ARGS[@]} -eq 0 && "${SCHEMATHESIS:-1}" != 0 ]]; then
    run_schemathesis || rc=$?
  fi
  return "$rc"
}

# Starts the system of the test environment as processes and runs scripts/schemathesis.sh against it.
run_schemathesis() {
  info "schemathesis: both services as processes, fuzzed from their OpenAPI documents"
  command -v python3 >/dev/null 2>&1 || apt_install python3
  local venv="$RUN_DIR/schemathesis-venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv python3-pip
    python3 -m venv "$venv" || die "cannot create a Python virtual environment for schemathesis"
  fi
  mkdir -p "$PID_DIR" "$LOG_DIR"
  ensure_built
  run_migrations
  run_seed
  start_processes >/dev/null
  local rc=0
  SCHEMATHESIS_VENV="$venv" "$ROOT/scripts/schemathesis.sh" http://127.0.0.1:8001 http://127.0.0.1:8002 \
    admin@billing.local dev-only-Admin-2026 || rc=$?
  check_single_process_actions || rc=$?
  return "$rc"
}

# The operator's one-process actions on the running test system, as an operator's script would call them: each
# must exit 0 when it did what it said (a worker has no health port; stopping PostgreSQL alone needs its binaries).
check_single_process_actions() {
  info "checking the one-process actions (start/stop -s)"
  local failed=0 action
  for action in "stop -s subscription-worker" "start -s subscription-worker" "restart -s payment-worker" \
                "stop -s postgres" "start -s postgres"; do
    # shellcheck disable=SC2086  # the action is words on purpose
    if "$ROOT/scripts/env-manager.sh" -e "$ENV_NAME" $action >/dev/null 2>&1; then
      ok "env-manager.sh -e $ENV_NAME $action"
    else
      warn "env-manager.sh -e $ENV_NAME $action exited non-zero"
      failed=1
    fi
  done
  proc_running subscription-worker || { warn "subscription-worker is not running after start -s"; failed=1; }
  pg_running || { warn "postgres is not running after start -s"; failed=1; }
  return "$failed"
}

case "$ACTION" in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  status) do_status ;;
  logs) do_logs ;;
  build) build ;;
  migrate) do_migrate ;;
  seed) do_seed ;;
  validate) do_validate ;;
  secrets) do_secrets ;;
  deploy) do_deploy ;;
  test) do_test ;;
  help) usage ;;
  *) usage >&2; die "unknown action '$ACTION'" ;;
esac
