#!/usr/bin/env bash
# Walks the example CRM's webhook REST API (/webhooks/v1/...) with curl, as the seed's
# script does: create an endpoint, list, disable/enable, rotate its secret, send a test,
# list events and deliveries, retry one, and show the OpenAPI document.
#
#   DATABASE_URL=postgres://… npx hookbox migrate
#   DATABASE_URL=postgres://… PORT=3000 pnpm --filter @hookbox/example-crm start &
#   bash apps/example-crm/test-webhooks-api.sh [http://127.0.0.1:3000] [tenant]
#
# The tenant travels in x-tenant-id (the example's stand-in for real authentication).
set -euo pipefail
BASE=${1:-http://127.0.0.1:3000}
TENANT=${2:-acme}
ENDPOINT=${ENDPOINT:-http://127.0.0.1:9999/hooks}
api() { # method path [json]
  local out
  out=$(curl -sS -X "$1" "$BASE/webhooks$2" -H "x-tenant-id: $TENANT" -H 'content-type: application/json' \
    ${3:+--data "$3"} -w '\n%{http_code}')
  echo "$1 $2 -> ${out##*$'\n'}" >&2
  echo "${out%$'\n'*}"
}
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(process.argv[1].split(".").reduce((o,k)=>o?.[k],v)??"")})' "$1"; }

api GET /v1/health >/dev/null
api GET /v1/event-types | json items.length
SUB=$(api POST /v1/subscriptions "{\"url\":\"$ENDPOINT\",\"eventTypes\":[\"message.*\",\"contact.created\"]}")
ID=$(echo "$SUB" | json subscription.id)
echo "created $ID (secret $(echo "$SUB" | json secret | cut -c1-10)…)"
api GET /v1/subscriptions | json items.length
api GET "/v1/subscriptions/$ID" | json url
api POST "/v1/subscriptions/$ID/disable" '{"reason":"maintenance"}' | json active
api POST "/v1/subscriptions/$ID/enable" '{}' | json active
api POST "/v1/subscriptions/$ID/rotate-secret" '{}' >/dev/null
api POST "/v1/subscriptions/$ID/test" '{}' >/dev/null || true
# A business action that emits events, then the log.
curl -sS -X POST "$BASE/inbound" -H "x-tenant-id: $TENANT" -H 'content-type: application/json' \
  --data '{"from":"+4915112345678","text":"hello from test-webhooks-api.sh"}' >/dev/null
api GET '/v1/events?limit=5' | json items.length
DELIVERIES=$(api GET '/v1/deliveries?limit=5')
FIRST=$(echo "$DELIVERIES" | json items.0.id)
if [ -n "$FIRST" ]; then
  api GET "/v1/deliveries/$FIRST" >/dev/null
  api POST "/v1/deliveries/$FIRST/retry" '{}' >/dev/null || true
fi
api GET /v1/stats >/dev/null
curl -sS "$BASE/docs-json" | json info.title
# Bad input is a 400 naming the field, never a 500.
api POST /v1/subscriptions '{"url":"ftp://nope","eventTypes":["*"]}' | json error.field
api DELETE "/v1/subscriptions/$ID" >/dev/null
echo "done"
