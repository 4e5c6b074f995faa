import { HookboxService } from '@hookbox/nestjs';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { FlowExecution } from './entities.js';
import type { CrmEvents } from './events.js';
import { now } from './tenant.js';

@Injectable()
export class FlowsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  start(tenantId: string, flowId: string, contactId: string, trigger: string): Promise<FlowExecution> {
    return this.dataSource.transaction(async (manager) => {
      const x = await manager.save(manager.create(FlowExecution, { tenantId, flowId, contactId, status: 'running' }));
      await this.hookbox.triggerEvent(
        tenantId,
        'flow.started',
        { flowId, executionId: x.id, contactId, trigger, startedAt: now() },
        { manager },
      );
      return x;
    });
  }

  private async running(manager: EntityManager, tenantId: string, id: string): Promise<FlowExecution> {
    const x = await manager.findOneBy(FlowExecution, { tenantId, id });
    if (!x) throw new NotFoundException(`flow execution ${id} not found`);
    return x;
  }

  complete(tenantId: string, executionId: string): Promise<FlowExecution> {
    return this.dataSource.transaction(async (manager) => {
      const x = await this.running(manager, tenantId, executionId);
      x.status = 'completed';
      await manager.save(x);
      const ref = { flowId: x.flowId, executionId: x.id, contactId: x.contactId };
      const durationMs = Math.max(0, Date.now() - x.startedAt.getTime());
      await this.hookbox.triggerEvent(
        tenantId,
        'flow.completed',
        { ...ref, durationMs, completedAt: now() },
        { manager },
      );
      return x;
    });
  }

  fail(tenantId: string, executionId: string, failedStep: string, error: { code: string; message: string }) {
    return this.dataSource.transaction(async (manager) => {
      const x = await this.running(manager, tenantId, executionId);
      x.status = 'failed';
      await manager.save(x);
      const ref = { flowId: x.flowId, executionId: x.id, contactId: x.contactId };
      await this.hookbox.triggerEvent(
        tenantId,
        'flow.failed',
        { ...ref, failedStep, error, failedAt: now() },
        { manager },
      );
      return x;
    });
  }
}
