// A Standard Webhooks receiver for hookbox with the `standardwebhooks` npm package
// (npm install standardwebhooks): what a receiver outside the hookbox codebase would use.
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node receiver-standardwebhooks.mjs
import http from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const webhook = new Webhook(process.env.WEBHOOK_SECRET); // takes the whsec_ secret as is
const seenIds = new Set(); // in production: a unique key in your database

const server = http.createServer(async (req, res) => {
  // The raw text, exactly as sent: the signature covers it, not re-encoded JSON.
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString('utf8');
  let event;
  try {
    event = webhook.verify(body, req.headers); // 5-minute timestamp tolerance
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
