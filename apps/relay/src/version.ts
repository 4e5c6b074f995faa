import { readFileSync } from 'node:fs';

/** The relay's package version, read from its package.json (src/ and dist/ sit beside it). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
