#!/usr/bin/env bash
# Property-based tests of both services from their own OpenAPI documents (schemathesis, from PyPI), with a user's
# and an administrator's token, against a running system. Fails on a 5xx, a status code the document does not
# list, or a response that violates its documented schema. Bounded: a fixed seed and a fixed number of examples.
#
#   scripts/schemathesis.sh <subscription-url> <payment-url> <admin-email> <admin-password>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUB=${1:?subscription service URL}
PAY=${2:?payment service URL}
ADMIN_EMAIL=${3:?admin email}
ADMIN_PASSWORD=${4:?admin password}
VENV=${SCHEMATHESIS_VENV:-$ROOT/.run/schemathesis-venv}
VERSION=4.32.5

if [[ ! -x "$VENV/bin/schemathesis" ]] || ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

token() {
  curl -fsS -X POST "$SUB/v1/auth/$1" -H 'content-type: application/json' -d "$2" \
    | python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["access_token"])'
}
USER_TOKEN=$(token register "{\"email\":\"schemathesis$RANDOM$RANDOM@example.com\",\"password\":\"sturdy pass 42\"}")
ADMIN_TOKEN=$(token login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}")

failed=0
for base in "$SUB" "$PAY"; do
  for who in user admin; do
    if [[ $who == user ]]; then tok=$USER_TOKEN; else tok=$ADMIN_TOKEN; fi
    echo "==> schemathesis: $base as $who"
    if ! "$VENV/bin/schemathesis" run "$base/openapi.json" \
        -H "Authorization: Bearer $tok" \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance \
        --max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --seed 20261128 --max-time "${SCHEMATHESIS_SECONDS:-30}" \
        --no-color >"$ROOT/.run/schemathesis-$(basename "$base")-$who.log" 2>&1; then
      tail -n 60 "$ROOT/.run/schemathesis-$(basename "$base")-$who.log"
      failed=1
    else
      grep -E "generated" "$ROOT/.run/schemathesis-$(basename "$base")-$who.log" | tail -n 1
    fi
  done
done
exit "$failed"
