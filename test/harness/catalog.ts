/**
 * The example CRM's event catalog (apps/example-crm/catalog): data, one JSON file per
 * event type plus index.json. The product's catalog lives with the product, not in the
 * generic library; tests, docs generation and the example app read it from here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CATALOG_DIR = fileURLToPath(new URL('../../apps/example-crm/catalog/', import.meta.url));

export interface CatalogEntry {
  type: string;
  description: string;
  firesWhen: string;
  /** JSON Schema 2020-12 of the payload (the envelope's `data`). */
  schema: Record<string, unknown>;
  example: Record<string, unknown>;
}

interface CatalogIndex {
  description: string;
  types: { type: string; file: string }[];
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(new URL(file, `file://${CATALOG_DIR}`), 'utf8')) as T;
}

export function catalogIndex(): CatalogIndex {
  return readJson<CatalogIndex>('index.json');
}

/** Every entry, in the index's order. */
export function loadCatalog(): CatalogEntry[] {
  return catalogIndex().types.map(({ file }) => readJson<CatalogEntry>(file));
}

/** The catalog's event types, in the index's order. */
export function catalogTypes(): string[] {
  return catalogIndex().types.map((t) => t.type);
}
