import { HookboxService } from '@hookbox/nestjs';
import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
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

  /**
   * The campaign, locked until the transaction ends, if it is still running: a campaign
   * finishes once, so a repeated or concurrent complete/fail is a 409 and emits nothing.
   */
  private async running(tenantId: string, id: string): Promise<Campaign> {
    const c = await this.dataSource.manager.findOne(Campaign, {
      where: { tenantId, id },
      lock: { mode: 'pessimistic_write' },
    });
    if (!c) throw new NotFoundException(`campaign ${id} not found`);
    if (c.status !== 'running') throw new ConflictException(`campaign ${id} was already ${c.status}`);
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
    const c = await this.running(tenantId, id);
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
    const c = await this.running(tenantId, id);
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
