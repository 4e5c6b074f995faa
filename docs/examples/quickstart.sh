#!/usr/bin/env bash
# The quick start in one script: migrate, subscribe a local receiver, enqueue in a
# transaction, and let the relay deliver until nothing is left. From a checkout, after
# `pnpm install && pnpm build`:  DATABASE_URL=postgres://… bash docs/examples/quickstart.sh
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to your PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL
HOOKBOX=${HOOKBOX:-node apps/relay/dist/cli.js} # the built binary; installed: hookbox
PORT=${PORT:-9000}
SECRET="whsec_$(node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('base64'))")"

# 1. The hookbox schema (idempotent).
$HOOKBOX migrate

# 2. A tenant's endpoint: our local receiver, for every order.* event. A rerun first deletes
#    the one an earlier run made (its secret left with that run's receiver).
URL="http://127.0.0.1:$PORT/webhooks"
for id in $($HOOKBOX subscriptions list --tenant acme --json |
  node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{for(const x of JSON.parse(s).items)if(x.url===process.argv[1])console.log(x.id)})' "$URL"); do
  $HOOKBOX subscriptions delete "$id" --tenant acme
done
$HOOKBOX subscriptions create --tenant acme --url "$URL" --events 'order.*' --secret "$SECRET"

# 3. A receiver that prints each request and checks its signature. In its own process
#    group (set -m), so that stopping it at the end also stops what a wrapper such as
#    `pnpm hookbox` started: nothing is left listening on the port.
set -m
$HOOKBOX listen --port "$PORT" --secret "$SECRET" &
LISTENER=$!
set +m
trap 'kill -- "-$LISTENER" 2>/dev/null || true' EXIT

# 4. Business row and event in one transaction (and one rolled back: never sent).
npx tsx docs/examples/drizzle.ts

# 5. The relay delivers; --exit-when-idle ends it once every delivery is final. The
#    receiver is on loopback, which the relay refuses unless allowed.
$HOOKBOX relay --allow-private-network 127.0.0.1 --exit-when-idle

# 6. The delivery log.
$HOOKBOX deliveries list --tenant acme
