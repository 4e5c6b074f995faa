/**
 * The benchmark's webhook receiver, in its own process: answers 204 at once, checks every
 * signature (HMAC only, no JSON parse), and reports counts and receipt times over IPC.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const secret = process.env.BENCH_SECRET ?? '';
const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
const now = () => performance.timeOrigin + performance.now();

let count = 0;
let badSignatures = 0;
let first = 0;
let last = 0;
const ids = new Set<string>();
let duplicates = 0;
let record: Map<string, number[]> | null = null;

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const t = now();
    const body = Buffer.concat(chunks);
    const id = String(req.headers['webhook-id']);
    const ts = String(req.headers['webhook-timestamp']);
    const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest();
    const sig = String(req.headers['webhook-signature'] ?? '');
    const ok = sig.split(' ').some((s) => {
      if (!s.startsWith('v1,')) return false;
      const got = Buffer.from(s.slice(3), 'base64');
      return got.length === expected.length && timingSafeEqual(got, expected);
    });
    if (!ok) badSignatures++;
    const key2 = `${id}${req.url}`;
    if (ids.has(key2)) duplicates++;
    else ids.add(key2);
    count++;
    if (first === 0) first = t;
    last = t;
    if (record) {
      const list = record.get(id);
      if (list) list.push(t);
      else record.set(id, [t]);
    }
    res.writeHead(204).end();
  });
});

server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
});

process.on('message', (m: { type: string }) => {
  switch (m.type) {
    case 'reset':
      count = 0;
      badSignatures = 0;
      first = 0;
      last = 0;
      duplicates = 0;
      ids.clear();
      record = null;
      process.send?.({ type: 'reset' });
      break;
    case 'record':
      record = new Map();
      process.send?.({ type: 'record' });
      break;
    case 'stats':
      process.send?.({
        type: 'stats',
        count,
        badSignatures,
        duplicates,
        first,
        last,
        receipts: record ? [...record.entries()] : null,
      });
      break;
    case 'exit':
      server.close();
      process.exit(0);
  }
});
