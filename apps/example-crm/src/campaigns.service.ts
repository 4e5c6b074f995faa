import { HookboxService } from '@hookbox/nestjs';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Transactional } from 'typeorm-transactional';
import { Campaign } from './entities.js';
import type { CrmEvents } from './events.js';
import { now } from './tenant.js';

/**
 * Written the typeorm-transactional way: `@Transactional()` opens the transaction and
 * `triggerEvent` joins it without a manager being passed around.
 */
@Injectable()
export class CampaignsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  private async get(tenantId: string, id: string): Promise<Campaign> {
    const c = await this.dataSource.manager.findOneBy(Campaign, { tenantId, id });
    if (!c) throw new NotFoundException(`campaign ${id} not found`);
    return c;
  }

  @Transactional()
  async start(tenantId: string, name: string, audienceSize: number): Promise<Campaign> {
    const c = await this.dataSource.manager.save(Campaign, { tenantId, name, audienceSize, status: 'running' });
    await this.hookbox.triggerEvent(tenantId, 'campaign.started', {
      campaignId: c.id,
      name,
      audienceSize,
      startedAt: now(),
    });
    return c;
  }

  @Transactional()
  async complete(tenantId: string, id: string, stats: CrmEvents['campaign.completed']['stats']): Promise<Campaign> {
    const c = await this.get(tenantId, id);
    c.status = 'completed';
    await this.dataSource.manager.save(c);
    await this.hookbox.triggerEvent(tenantId, 'campaign.completed', {
      campaignId: c.id,
      name: c.name,
      stats,
      completedAt: now(),
    });
    return c;
  }

  @Transactional()
  async fail(tenantId: string, id: string, error: { code: string; message: string }): Promise<Campaign> {
    const c = await this.get(tenantId, id);
    c.status = 'failed';
    await this.dataSource.manager.save(c);
    await this.hookbox.triggerEvent(tenantId, 'campaign.failed', {
      campaignId: c.id,
      name: c.name,
      error,
      failedAt: now(),
    });
    return c;
  }
}
