import { HookboxModule } from '@hookbox/nestjs';
import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { addTransactionalDataSource } from 'typeorm-transactional';
import { AutomationsService } from './automations.service.js';
import { CampaignsService } from './campaigns.service.js';
import { ContactsService } from './contacts.service.js';
import { ConversationsService } from './conversations.service.js';
import { CrmController } from './crm.controller.js';
import { ENTITIES } from './entities.js';
import { FlowsService } from './flows.service.js';
import { MessagesService } from './messages.service.js';
import { TemplatesService } from './templates.service.js';
import { WebhooksApiModule } from './webhooks-api.js';

export interface CrmOptions {
  databaseUrl: string;
  /** Create the CRM's tables from the entities (demo and tests; use migrations in production). */
  synchronize?: boolean;
}

/** The feature services; each injects HookboxService (the HookboxModule is global). */
@Module({
  controllers: [CrmController],
  providers: [
    ContactsService,
    ConversationsService,
    MessagesService,
    CampaignsService,
    FlowsService,
    AutomationsService,
    TemplatesService,
  ],
})
export class CrmModule {}

@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's dynamic-module convention
export class AppModule {
  static forRoot(options: CrmOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => ({
            type: 'postgres' as const,
            url: options.databaseUrl,
            entities: ENTITIES,
            synchronize: options.synchronize ?? false,
            applicationName: 'example-crm',
          }),
          // typeorm-transactional: @Transactional() methods (CampaignsService) share one transaction.
          dataSourceFactory: async (o) => addTransactionalDataSource(new DataSource(o as DataSourceOptions)),
        }),
        HookboxModule.forRoot({ isGlobal: true, strict: true }),
        CrmModule,
        WebhooksApiModule,
      ],
    };
  }
}
