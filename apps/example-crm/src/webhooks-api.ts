/**
 * The tenants' webhook API mounted at /webhooks (HookboxApiModule) and its OpenAPI
 * document merged into the app's own through @nestjs/swagger at /docs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { HOOKBOX_API, HookboxApiModule } from '@hookbox/nestjs';
import type { CatalogEntry } from '@hookbox/outbox/api';
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';

const CATALOG_DIR = new URL('../catalog/', import.meta.url);

/** The event catalog files (`catalog/<type>.json`), when present. */
export function loadCatalog(): CatalogEntry[] {
  if (!existsSync(CATALOG_DIR)) return [];
  return readdirSync(CATALOG_DIR)
    .filter((f) => f.endsWith('.json') && f !== 'index.json')
    .map((f) => JSON.parse(readFileSync(new URL(f, CATALOG_DIR), 'utf8')) as CatalogEntry)
    .map(({ type, description, firesWhen, schema }) => ({ type, description, firesWhen, schema }));
}

export const WebhooksApiModule = HookboxApiModule.register({
  path: 'webhooks',
  // The example's stand-in for authentication; a real app returns req.user.tenantId.
  resolveTenant: (req) => {
    const t = req.headers['x-tenant-id'];
    return typeof t === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(t) ? t : null;
  },
  catalog: loadCatalog(),
});

/** Serves the app's OpenAPI document, hookbox's routes included, at /docs (JSON: /docs-json). */
export function setupSwagger(app: INestApplication): OpenAPIObject {
  const hookbox = app.get<{ openapi: Record<string, unknown> }>(HOOKBOX_API).openapi as {
    openapi: string;
    paths: Record<string, unknown>;
    components?: { schemas?: Record<string, unknown> };
  };
  // hookbox's schemas are OpenAPI 3.1 (JSON Schema: `const`, type arrays); Nest writes 3.0
  // unless told otherwise, and a 3.0 document holding them is invalid.
  const config = new DocumentBuilder()
    .setOpenAPIVersion(hookbox.openapi)
    .setTitle('example-crm')
    .setVersion('0.1.0')
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  // The catch-all controller route is replaced by hookbox's documented routes.
  for (const p of Object.keys(doc.paths)) if (p.startsWith('/webhooks/')) delete doc.paths[p];
  for (const [p, item] of Object.entries(hookbox.paths)) doc.paths[`/webhooks${p}`] = item as never;
  doc.components = {
    ...doc.components,
    schemas: { ...(doc.components?.schemas ?? {}), ...(hookbox.components?.schemas ?? {}) } as never,
  };
  SwaggerModule.setup('docs', app, doc);
  return doc;
}
