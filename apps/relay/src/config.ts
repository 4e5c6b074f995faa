/**
 * The relay's configuration: defaults in one place, flag > environment > default, validated
 * once here. Only the app reads the environment; the library never does.
 */
import { Option } from 'commander';
import { UsageError } from './errors.js';

export function databaseUrlOption(): Option {
  return new Option('--database-url <url>', 'PostgreSQL connection string').env('DATABASE_URL');
}

/** The database URL from the flag (or DATABASE_URL, which commander already applied). */
export function resolveDatabaseUrl(flag: string | undefined): string {
  const url = flag ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError('no database: pass --database-url or set DATABASE_URL');
  try {
    const u = new URL(url);
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('scheme');
  } catch {
    throw new UsageError('--database-url: must be a postgres:// or postgresql:// URL');
  }
  return url;
}
