#!/usr/bin/env bash
# Property-based tests of both services from their own OpenAPI documents (schemathesis, from PyPI), with a user's
# and an administrator's token, against a running system. Fails on a 5xx, a status code the document does not
# list, a response that violates its documented schema, or a request the document allows that is refused
# (positive_data_acceptance; settings in scripts/schemathesis.toml, formats in scripts/schemathesis_hooks.py).
# Bounded: a fixed seed and a fixed number of examples.
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
    | python3 -c "import sys, json; print(json.load(sys.stdin)['data']['$3'])"
}

# Every run has a user and an administrator of its own, set up before any run: a run signs out and reuses refresh
# tokens, which revokes every token its user holds, and its sign-ups and sign-ins use up the limits of the address
# (strict in the test environment). The seeded administrator promotes the runs' administrators.
declare -A TOKEN
SEED_ADMIN=$(token login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" access_token)
for base in "$SUB" "$PAY"; do
  for who in user admin; do
    email="schemathesis-$who-$RANDOM$RANDOM@example.com"
    body="{\"email\":\"$email\",\"password\":\"sturdy pass 42\"}"
    TOKEN[$base/$who]=$(token register "$body" access_token)
    if [[ $who == admin ]]; then
      id=$(token login "$body" user_id)
      curl -fsS -o /dev/null -X PUT "$SUB/v1/admin/users/$id/role" -H "Authorization: Bearer $SEED_ADMIN" \
        -H 'content-type: application/json' -d '{"role":"admin"}'
      # The new role revokes the tokens issued before it.
      TOKEN[$base/$who]=$(token login "$body" access_token)
    fi
  done
done

failed=0
for base in "$SUB" "$PAY"; do
  for who in user admin; do
    tok=${TOKEN[$base/$who]}
    echo "==> schemathesis: $base as $who"
    if ! PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks \
        "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$base/openapi.json" \
        -H "Authorization: Bearer $tok" \
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
