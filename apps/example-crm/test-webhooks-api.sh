#!/usr/bin/env bash
# Walks the example CRM's webhook REST API (/webhooks/v1/...) with curl, as the seed's
# script does: create an endpoint, list, get, update, disable/enable, rotate its secret,
# send a test, the event catalog, events and deliveries with their attempts, retry and
# replay, statistics, the OpenAPI document; then what must fail: no tenant (401), another
# tenant (404), bad input (400).
#
#   DATABASE_URL=postgres://… npx hookbox migrate
#   DATABASE_URL=postgres://… PORT=3000 pnpm --filter @hookbox/example-crm start &
#   DATABASE_URL=postgres://… npx hookbox relay --allow-private-network 127.0.0.1 &
#   bash apps/example-crm/test-webhooks-api.sh [http://127.0.0.1:3000] [tenant]
#
# Every call states the status it expects; any other stops the script with exit 1. Replay
# needs the relay running (it replays an event the relay has fanned out). The tenant
# travels in x-tenant-id (the example's stand-in for real authentication).
# apps/example-crm/test/webhooks-api-script.test.ts runs this script against the example.
set -euo pipefail
BASE=${1:-http://127.0.0.1:3000}
TENANT=${2:-acme}
OTHER=${OTHER_TENANT:-globex}
ENDPOINT=${ENDPOINT:-http://127.0.0.1:9999/hooks}
WAIT_SECONDS=${WAIT_SECONDS:-30}

# call <expected status> <method> <path> [json body] [tenant]: prints the body; any other
# status is a failure.
call() {
  local want=$1 method=$2 path=$3 data=${4:-} tenant=${5-$TENANT} out code
  local args=(-sS -X "$method" "$BASE$path" -H 'content-type: application/json' -w '\n%{http_code}')
  if [ -n "$tenant" ]; then args+=(-H "x-tenant-id: $tenant"); fi
  if [ -n "$data" ]; then args+=(--data "$data"); fi
  out=$(curl "${args[@]}")
  code=${out##*$'\n'}
  echo "$method $path -> $code" >&2
  if [ "$code" != "$want" ]; then
    echo "FAIL: $method $path answered $code, expected $want: ${out%$'\n'*}" >&2
    exit 1
  fi
  printf '%s\n' "${out%$'\n'*}"
}
api() { call "$1" "$2" "/webhooks$3" "${4:-}"; } # <status> <method> <path below /webhooks> [json]
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(process.argv[1].split(".").reduce((o,k)=>o?.[k],v)??"")})' "$1"; }
# wait_for <description> <command…>: retries the command (quietly) until it succeeds.
wait_for() {
  local what=$1 i
  shift
  for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "FAIL: $what within ${WAIT_SECONDS}s (is hookbox relay running?)" >&2
  exit 1
}

api 200 GET /v1/health >/dev/null
echo "event types in the catalog: $(api 200 GET /v1/event-types | json items.length)"

SUB=$(api 201 POST /v1/subscriptions "{\"url\":\"$ENDPOINT\",\"eventTypes\":[\"message.*\",\"contact.created\"]}")
ID=$(echo "$SUB" | json subscription.id)
echo "created $ID (secret $(echo "$SUB" | json secret | cut -c1-10)…, shown once)"
echo "endpoints: $(api 200 GET /v1/subscriptions | json items.length)"
api 200 GET "/v1/subscriptions/$ID" | json url
api 200 PATCH "/v1/subscriptions/$ID" '{"description":"walked by test-webhooks-api.sh"}' | json description
echo "active after disable: $(api 200 POST "/v1/subscriptions/$ID/disable" '{"reason":"maintenance"}' | json active)"
echo "active after enable: $(api 200 POST "/v1/subscriptions/$ID/enable" '{}' | json active)"
api 200 POST "/v1/subscriptions/$ID/rotate-secret" '{}' >/dev/null
DELIVERY=$(api 202 POST "/v1/subscriptions/$ID/test" '{}' | json deliveryId)
echo "test event: delivery $DELIVERY"

# A business action that emits events (contact.created, conversation.created, message.new).
call 201 POST /inbound '{"from":"+4915112345678","text":"hello from test-webhooks-api.sh"}' >/dev/null
EVENT=$(api 200 GET '/v1/events?type=message.new&limit=1' | json items.0.id)
echo "message.new event $EVENT"
fanned_out() { [ -n "$(api 200 GET "/v1/events/$EVENT" | json event.fannedOutAt)" ]; }
wait_for "the relay fans out $EVENT" fanned_out
REPLAY=$(api 202 POST "/v1/events/$EVENT/replay" '{}')
echo "replay: $(echo "$REPLAY" | json created.length) new, $(echo "$REPLAY" | json alreadyPending.length) already pending"
echo "deliveries: $(api 200 GET '/v1/deliveries?limit=10' | json items.length)"

# Retry the test delivery once it is final: a dead one is sent again (202), a succeeded one
# is refused (400: replay its event instead).
final() { case $(api 200 GET "/v1/deliveries/$DELIVERY" | json delivery.status) in succeeded | dead) ;; *) return 1 ;; esac; }
wait_for "delivery $DELIVERY becomes final" final
DETAIL=$(api 200 GET "/v1/deliveries/$DELIVERY")
STATUS=$(echo "$DETAIL" | json delivery.status)
echo "delivery $DELIVERY: $STATUS after $(echo "$DETAIL" | json attempts.length) attempt(s)"
if [ "$STATUS" = dead ]; then
  echo "retried as delivery $(api 202 POST "/v1/deliveries/$DELIVERY/retry" '{}' | json delivery.id)"
else
  api 400 POST "/v1/deliveries/$DELIVERY/retry" '{}' | json error.rule
fi
api 200 GET /v1/stats >/dev/null
call 200 GET /docs-json | json info.title

# What must fail, and how: never a 500.
call 401 GET /webhooks/v1/subscriptions '' '' | json error.code
call 404 GET "/webhooks/v1/subscriptions/$ID" '' "$OTHER" | json error.code
api 400 POST /v1/subscriptions '{"url":"ftp://nope","eventTypes":["*"]}' | json error.field
api 204 DELETE "/v1/subscriptions/$ID" >/dev/null
api 404 GET "/v1/subscriptions/$ID" | json error.code
echo "done"
