// A Standard Webhooks receiver for hookbox with @hookbox/outbox's verify.
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.mjs
//
// node:http only; with Express, read the raw body: app.post('/webhooks',
// express.raw({ type: 'application/json' }), …) and pass req.body (a Buffer) to verify.
import http from 'node:http';
import { verify, WebhookVerificationError } from '@hookbox/outbox';

const secret = process.env.WEBHOOK_SECRET;
// How far webhook-timestamp may be from now, in seconds (Standard Webhooks: 5 minutes).
const toleranceSeconds = Number(process.env.WEBHOOK_TOLERANCE_SECONDS ?? 300);
const seenIds = new Set(); // in production: a unique key in your database

const server = http.createServer(async (req, res) => {
  // The raw bytes, exactly as sent: the signature covers them, not re-encoded JSON.
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  let event;
  try {
    // Signature and timestamp first: a replayed request is refused before the webhook-id check.
    event = verify(secret, req.headers, body, { toleranceSeconds });
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err;
    console.log(`rejected ${err.reason}`);
    res.writeHead(401).end();
    return;
  }
  const id = req.headers['webhook-id'];
  // Answer fast; hand real work to a queue. A duplicate is acknowledged, not redone.
  console.log(`${seenIds.has(id) ? 'duplicate' : 'accepted'} ${id} ${event.type}`);
  seenIds.add(id);
  res.writeHead(204).end();
});

server.listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
