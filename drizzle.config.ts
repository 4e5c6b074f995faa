import { defineConfig } from 'drizzle-kit';

// `pnpm db:generate` writes SQL migrations for packages/outbox/src/schema.ts into drizzle/.
// `hookbox migrate` (and `pnpm db:migrate`) applies them with drizzle-orm's migrator.
export default defineConfig({
  dialect: 'postgresql',
  schema: './packages/outbox/src/schema.ts',
  out: './drizzle',
  schemaFilter: ['hookbox'],
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
});
