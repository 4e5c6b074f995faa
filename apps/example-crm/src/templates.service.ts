import { randomInt } from 'node:crypto';
import { HookboxService } from '@hookbox/nestjs';
import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Template } from './entities.js';
import type { Category, CrmEvents } from './events.js';
import { now } from './tenant.js';

@Injectable()
export class TemplatesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  /** Submits a template to Meta for review (no event: the review's outcome is one). */
  submit(tenantId: string, input: { name: string; language: string; category: Category }): Promise<Template> {
    const externalId = String(1e15 + randomInt(2 ** 47));
    return this.dataSource.manager.save(Template, { tenantId, externalId, status: 'pending', ...input });
  }

  /** Meta's review callback. */
  review(tenantId: string, id: string, outcome: { approved: true } | { approved: false; reason: string }) {
    return this.dataSource.transaction(async (manager) => {
      const t = await manager.findOneBy(Template, { tenantId, id });
      if (!t) throw new NotFoundException(`template ${id} not found`);
      if (t.status !== 'pending') throw new ConflictException(`template ${id} was already ${t.status}`);
      t.status = outcome.approved ? 'approved' : 'rejected';
      await manager.save(t);
      const ref = { templateId: t.externalId, name: t.name, language: t.language };
      if (outcome.approved) {
        await this.hookbox.triggerEvent(
          tenantId,
          'template.approved',
          { ...ref, category: t.category, approvedAt: now() },
          { manager },
        );
      } else {
        await this.hookbox.triggerEvent(
          tenantId,
          'template.rejected',
          { ...ref, reason: outcome.reason, rejectedAt: now() },
          { manager },
        );
      }
      return t;
    });
  }
}
