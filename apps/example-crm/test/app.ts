/** The example CRM as its tests start it: a Nest app on the test database, with its Swagger document. */
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { initializeTransactionalContext } from 'typeorm-transactional';
import { AppModule } from '../src/app.module.js';
import { setupSwagger } from '../src/webhooks-api.js';

/** Builds the app (not yet listening): `app.init()` for supertest, `app.listen()` for a real port. */
export async function createExampleApp(databaseUrl: string): Promise<INestApplication> {
  initializeTransactionalContext();
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ databaseUrl, synchronize: true })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  setupSwagger(app);
  return app;
}
