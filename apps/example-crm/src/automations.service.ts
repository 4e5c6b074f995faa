import { HookboxService } from '@hookbox/nestjs';
import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AutomationRun } from './entities.js';
import type { CrmEvents } from './events.js';
import { now } from './tenant.js';

@Injectable()
export class AutomationsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  trigger(tenantId: string, automationId: string, trigger: { event: string; resourceId: string }) {
    return this.dataSource.transaction(async (manager) => {
      const run = await manager.save(manager.create(AutomationRun, { tenantId, automationId, status: 'running' }));
      await this.hookbox.triggerEvent(
        tenantId,
        'automation.triggered',
        { automationId, runId: run.id, trigger, triggeredAt: now() },
        { manager },
      );
      return run;
    });
  }

  complete(tenantId: string, runId: string, actionsRun: number) {
    return this.dataSource.transaction(async (manager) => {
      // Locked until the transaction ends: a run completes once (a repeat is a 409, no event).
      const run = await manager.findOne(AutomationRun, {
        where: { tenantId, id: runId },
        lock: { mode: 'pessimistic_write' },
      });
      if (!run) throw new NotFoundException(`automation run ${runId} not found`);
      if (run.status !== 'running') throw new ConflictException(`automation run ${runId} was already ${run.status}`);
      run.status = 'completed';
      await manager.save(run);
      await this.hookbox.triggerEvent(
        tenantId,
        'automation.completed',
        { automationId: run.automationId, runId: run.id, actionsRun, completedAt: now() },
        { manager },
      );
      return run;
    });
  }
}
