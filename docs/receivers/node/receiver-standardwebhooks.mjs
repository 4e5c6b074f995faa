// A Standard Webhooks receiver for hookbox with the `standardwebhooks` npm package
// (npm install standardwebhooks): what a receiver outside the hookbox codebase would use.
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node receiver-standardwebhooks.mjs
import http from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const webhook = new Webhook(process.env.WEBHOOK_SECRET); // takes the whsec_ secret as is
// How far webhook-timestamp may be from now, in seconds. Webhook.verify always allows
// 5 minutes (not configurable); this setting can only make that stricter.
const toleranceSeconds = Number(process.env.WEBHOOK_TOLERANCE_SECONDS ?? 300);
const seenIds = new Set(); // in production: a unique key in your database

const server = http.createServer(async (req, res) => {
  // The raw text, exactly as sent: the signature covers it, not re-encoded JSON.
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString('utf8');
  let event;
  try {
    // Signature and timestamp first: a replayed request is refused before the webhook-id check.
    event = webhook.verify(body, req.headers); // also refuses timestamps over 5 minutes off
    const age = Math.abs(Date.now() / 1000 - Number(req.headers['webhook-timestamp']));
    if (age > toleranceSeconds) throw new WebhookVerificationError('timestamp outside the tolerance');
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err;
    console.log(`rejected ${err.message}`);
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
