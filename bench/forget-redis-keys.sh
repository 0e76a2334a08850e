#!/usr/bin/env bash
# Deletes every key under each prefix given from the Redis on PORT: what a bench run wrote, once it is done.
# Kept, a day of runs' keys (usage idempotency keys live until their period ends) filled the development Redis
# with millions of keys, whose background saves then forked and wrote gigabytes during later runs.
#   bench/forget-redis-keys.sh PORT PREFIX...
set -euo pipefail
port=$1; shift
for prefix in "$@"; do
  redis-cli -p "$port" --scan --pattern "$prefix*" | xargs -r -n 1000 redis-cli -p "$port" UNLINK >/dev/null
done
