import { HookboxService } from '@hookbox/nestjs';
import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
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

  /**
   * The execution, locked until the transaction ends, if it is still running: an execution
   * finishes once, so a repeated or concurrent complete/fail is a 409 and emits nothing.
   */
  private async running(manager: EntityManager, tenantId: string, id: string): Promise<FlowExecution> {
    const x = await manager.findOne(FlowExecution, { where: { tenantId, id }, lock: { mode: 'pessimistic_write' } });
    if (!x) throw new NotFoundException(`flow execution ${id} not found`);
    if (x.status !== 'running') throw new ConflictException(`flow execution ${id} was already ${x.status}`);
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
