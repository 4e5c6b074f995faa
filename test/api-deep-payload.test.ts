/**
 * The API's read paths answer whatever the database holds (issue #11.4, the closing rule):
 * an event payload written through SQL may be nested far deeper than enqueue's limit and
 * than JSON.stringify's call stack. GET /v1/events/{id} answered a bare 500 for it, through
 * the handlers, `hookbox serve` and the NestJS controller alike.
 */
import 'reflect-metadata';
import { HookboxApiModule } from '@hookbox/nestjs';
import { createApi, createPortalToken } from '@hookbox/outbox/api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../apps/relay/src/logger.js';
import { startServe } from '../apps/relay/src/serve/server.js';
import { useTestDatabase } from './harness/db.js';
import { LogBuffer, useCleanup } from './harness/relay.js';

const db = useTestDatabase();
const defer = useCleanup(afterEach);
const TENANT = 'deep-api';
// Deeper than JSON.stringify manages (it overflows near 5,000 levels), within what
// PostgreSQL parses under its default max_stack_depth (2 MB: about 12,000 levels).
const LEVELS = 10_000;
let eventId: string;

function depthOf(value: unknown): number {
  let depth = 0;
  let v = value;
  while (v !== null && typeof v === 'object') {
    v = Array.isArray(v) ? v[0] : (v as { a: unknown }).a;
    depth++;
  }
  return depth;
}

beforeAll(async () => {
  // A hostile database state: written directly, past hookbox.enqueue's depth limit.
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO hookbox.events (tenant_id, type, payload)
     VALUES ($1, 'deep.x', (repeat('{"a":', $2) || '1' || repeat('}', $2))::jsonb) RETURNING id`,
    [TENANT, LEVELS],
  );
  eventId = (rows[0] as { id: string }).id;
});

describe('GET /v1/events/{id} with a payload nested 10,000 levels deep', () => {
  it('the handlers answer it', async () => {
    const api = createApi({ db: db.pool });
    const res = await api.handle({ method: 'GET', path: `/v1/events/${eventId}`, auth: { tenantId: TENANT } });
    expect(res.status).toBe(200);
    expect(depthOf((res.body as { event: { payload: unknown } }).event.payload)).toBe(LEVELS);
  });

  it('hookbox serve answers it over HTTP', async () => {
    const s = await startServe({ db: db.pool, logger: createLogger('info', new LogBuffer()), port: 0 });
    defer(() => s.close());
    const { token } = await createPortalToken(db.pool, { tenantId: TENANT });
    const res = await fetch(`${s.url}/v1/events/${eventId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(depthOf(JSON.parse(await res.text()).event.payload)).toBe(LEVELS);
  });

  it('the NestJS controller writes it (as Express would: res.json is JSON.stringify)', async () => {
    const module = HookboxApiModule.register({ resolveTenant: () => TENANT });
    const Controller = module.controllers?.[0] as new (
      ...args: unknown[]
    ) => {
      handle(req: unknown, res: unknown): Promise<void>;
    };
    const api = createApi({ db: db.pool });
    const controller = new Controller({ resolveTenant: () => TENANT }, { get: () => api });
    const sent: { status?: number; type?: string; text?: string } = {};
    const res = {
      status(code: number) {
        sent.status = code;
        return res;
      },
      type(t: string) {
        sent.type = t;
        return res;
      },
      json(body: unknown) {
        sent.type = 'application/json';
        sent.text = JSON.stringify(body);
      },
      send(text: string) {
        sent.text = text;
      },
      end() {},
    };
    await controller.handle(
      { method: 'GET', params: { path: ['v1', 'events', eventId] }, query: {}, headers: {} },
      res,
    );
    expect(sent.status).toBe(200);
    expect(sent.type).toMatch(/json/);
    expect(depthOf(JSON.parse(sent.text as string).event.payload)).toBe(LEVELS);
  });
});
