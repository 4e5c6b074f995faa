import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationsFolder } from './migrate.js';

const root = mkdtempSync(join(tmpdir(), 'hookbox-migrations-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function journal(dir: string): void {
  mkdirSync(join(dir, 'meta'), { recursive: true });
  writeFileSync(join(dir, 'meta', '_journal.json'), '{"entries":[]}');
}

describe('migrationsFolder', () => {
  it('finds drizzle/ beside dist/ in an installed package (node_modules/@hookbox/relay)', () => {
    const pkg = join(root, 'app', 'node_modules', '@hookbox', 'relay');
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    journal(join(pkg, 'drizzle'));
    expect(migrationsFolder(join(pkg, 'dist'))).toBe(join(pkg, 'drizzle'));
  });

  it('finds the repository top-level drizzle/ from apps/relay/src in a checkout', () => {
    const repo = join(root, 'repo');
    mkdirSync(join(repo, 'apps', 'relay', 'src'), { recursive: true });
    journal(join(repo, 'drizzle'));
    expect(migrationsFolder(join(repo, 'apps', 'relay', 'src'))).toBe(join(repo, 'drizzle'));
  });

  it('says where it looked when there is none', () => {
    const empty = join(root, 'empty', 'dist');
    mkdirSync(empty, { recursive: true });
    expect(() => migrationsFolder(empty)).toThrow(/migrations folder not found/);
  });

  it('finds the real one from the source tree', () => {
    expect(migrationsFolder()).toMatch(/drizzle$/);
  });
});
