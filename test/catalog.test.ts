/**
 * The example CRM's event catalog is data (apps/example-crm/catalog): each entry's example
 * must satisfy its own JSON Schema, the schemas must be strict enough to refuse what they
 * do not describe, and the index must list exactly the files that exist.
 */
import { readdirSync } from 'node:fs';
import { isValidEventType, matchesEventType } from '@hookbox/outbox';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { CATALOG_DIR, type CatalogEntry, catalogIndex, catalogTypes, loadCatalog } from './harness/catalog.js';

const catalog = loadCatalog();

// One validator for all schemas (each has its own $id), strict: unknown keywords are errors.
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats.default(ajv);
for (const e of catalog) ajv.addSchema(e.schema);
const compiled = (e: CatalogEntry) => ajv.getSchema(e.schema.$id as string)!;

describe('event catalog', () => {
  it('has the 22 product event types, each a well-formed hookbox event type', () => {
    expect(catalog).toHaveLength(22);
    for (const e of catalog) expect(isValidEventType(e.type), e.type).toBe(true);
    expect(new Set(catalogTypes()).size).toBe(22);
    const families = new Set(catalogTypes().map((t) => t.split('.')[0]));
    expect([...families].sort()).toEqual([
      'automation',
      'campaign',
      'contact',
      'conversation',
      'flow',
      'message',
      'template',
    ]);
  });

  it('index.json lists exactly the entry files in the directory, each named after its type', () => {
    const files = readdirSync(CATALOG_DIR).filter((f) => f.endsWith('.json') && f !== 'index.json');
    expect(
      catalogIndex()
        .types.map((t) => t.file)
        .sort(),
    ).toEqual(files.sort());
    for (const { type, file } of catalogIndex().types) expect(file).toBe(`${type}.json`);
    for (const e of catalog)
      expect(Object.keys(e).sort()).toEqual(['description', 'example', 'firesWhen', 'schema', 'type']);
  });

  it.each(catalog.map((e) => [e.type, e] as [string, CatalogEntry]))(
    '%s: the example satisfies the schema',
    (_type, e) => {
      const validate = compiled(e);
      const ok = validate(e.example);
      expect(validate.errors ?? []).toEqual([]);
      expect(ok).toBe(true);
      expect(e.schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    },
  );

  it.each(catalog.map((e) => [e.type, e] as [string, CatalogEntry]))(
    '%s: the schema refuses a payload missing a required field or carrying an unknown one',
    (_type, e) => {
      const validate = compiled(e);
      const required = e.schema.required as string[];
      expect(required.length).toBeGreaterThan(0);
      for (const field of required) {
        const { [field]: _dropped, ...rest } = e.example;
        expect(validate(rest), `without ${field}`).toBe(false);
      }
      expect(validate({ ...e.example, unexpectedField: 1 })).toBe(false);
    },
  );

  it('a type pattern names exactly its family (the catalog matches the docs: `conversation.*` is five types)', () => {
    const types = catalogTypes();
    for (const t of types) expect(types.filter((u) => matchesEventType(t, u))).toEqual([t]);
    expect(types.filter((t) => matchesEventType('conversation.*', t))).toHaveLength(5);
    expect(types.filter((t) => matchesEventType('message.*', t))).toHaveLength(5);
  });
});
