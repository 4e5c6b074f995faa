/**
 * The example CRM: `DATABASE_URL=… PORT=3000 pnpm --filter @hookbox/example-crm start`.
 * Run `hookbox migrate` on the database first, and `hookbox relay` beside it.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { initializeTransactionalContext } from 'typeorm-transactional';
import { AppModule } from './app.module.js';
import { setupSwagger } from './webhooks-api.js';

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  initializeTransactionalContext();
  const app = await NestFactory.create(AppModule.forRoot({ databaseUrl, synchronize: true }));
  app.enableShutdownHooks();
  setupSwagger(app);
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  console.log(`example-crm listening on http://127.0.0.1:${port}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
