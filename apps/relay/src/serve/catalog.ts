/**
 * `hookbox serve --catalog <dir>`: the event catalog as data, one JSON file per type
 * (`{ type, description, firesWhen, schema, example }`, as in apps/example-crm/catalog).
 * Files without a `type` (such as an index.json) are skipped; a malformed one stops the
 * start with its name: a ValidationError whose field is `catalog` (`hookbox serve` says `--catalog`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '@hookbox/outbox';
import { type CatalogEntry, validateCatalog } from '@hookbox/outbox/api';

export function loadCatalogDir(dir: string): CatalogEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  } catch (err) {
    throw new ValidationError('catalog', 'read', `cannot read directory ${dir}: ${(err as Error).message}`);
  }
  const entries: unknown[] = [];
  for (const name of names) {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch (err) {
      throw new ValidationError('catalog', 'format', `${name}: not valid JSON (${(err as Error).message})`);
    }
    if (data !== null && typeof data === 'object' && 'type' in data) entries.push(data);
  }
  // Its ValidationError names the entry: `catalog[2].type`.
  return validateCatalog(entries);
}
