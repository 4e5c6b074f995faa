import { HookboxService } from '@hookbox/nestjs';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { Conversation } from './entities.js';
import type { CrmEvents, Status } from './events.js';
import { now } from './tenant.js';

type Actor = CrmEvents['conversation.resolved']['resolvedBy'];

@Injectable()
export class ConversationsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  /** Opens a conversation inside the caller's transaction. */
  async openIn(manager: EntityManager, tenantId: string, contactId: string): Promise<Conversation> {
    const c = await manager.save(manager.create(Conversation, { tenantId, contactId, status: 'open', labels: [] }));
    await this.hookbox.triggerEvent(
      tenantId,
      'conversation.created',
      { conversationId: c.id, contactId, channel: 'whatsapp', status: 'open', createdAt: now() },
      { manager },
    );
    return c;
  }

  async get(manager: EntityManager, tenantId: string, id: string): Promise<Conversation> {
    const c = await manager.findOneBy(Conversation, { tenantId, id });
    if (!c) throw new NotFoundException(`conversation ${id} not found`);
    return c;
  }

  update(tenantId: string, id: string, patch: { status?: Status; labels?: string[] }): Promise<Conversation> {
    return this.dataSource.transaction(async (manager) => {
      const c = await this.get(manager, tenantId, id);
      const changes = (['status', 'labels'] as const).filter(
        (k) => patch[k] !== undefined && JSON.stringify(patch[k]) !== JSON.stringify(c[k]),
      );
      Object.assign(c, Object.fromEntries(changes.map((k) => [k, patch[k]])));
      await manager.save(c);
      await this.hookbox.triggerEvent(
        tenantId,
        'conversation.updated',
        { conversationId: c.id, contactId: c.contactId, changes, status: c.status, labels: c.labels, updatedAt: now() },
        { manager },
      );
      return c;
    });
  }

  assign(tenantId: string, id: string, assigneeId: string | null, assignedBy: Actor): Promise<Conversation> {
    return this.dataSource.transaction(async (manager) => {
      const c = await this.get(manager, tenantId, id);
      const previousAssigneeId = c.assigneeId;
      c.assigneeId = assigneeId;
      await manager.save(c);
      await this.hookbox.triggerEvent(
        tenantId,
        'conversation.assigned',
        { conversationId: c.id, contactId: c.contactId, assigneeId, previousAssigneeId, assignedBy, assignedAt: now() },
        { manager },
      );
      return c;
    });
  }

  resolve(tenantId: string, id: string, resolvedBy: Actor): Promise<Conversation> {
    return this.dataSource.transaction(async (manager) => {
      const c = await this.get(manager, tenantId, id);
      c.status = 'resolved';
      await manager.save(c);
      await this.hookbox.triggerEvent(
        tenantId,
        'conversation.resolved',
        { conversationId: c.id, contactId: c.contactId, resolvedBy, resolvedAt: now() },
        { manager },
      );
      return c;
    });
  }

  close(tenantId: string, id: string, closedBy: Actor, reason: string | null): Promise<Conversation> {
    return this.dataSource.transaction(async (manager) => {
      const c = await this.get(manager, tenantId, id);
      c.status = 'closed';
      await manager.save(c);
      await this.hookbox.triggerEvent(
        tenantId,
        'conversation.closed',
        { conversationId: c.id, contactId: c.contactId, closedBy, reason, closedAt: now() },
        { manager },
      );
      return c;
    });
  }
}
