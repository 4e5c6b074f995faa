import { HookboxService } from '@hookbox/nestjs';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { Contact } from './entities.js';
import type { CrmEvents } from './events.js';
import { now } from './tenant.js';

export interface ContactInput {
  phone: string;
  name?: string | null;
  email?: string | null;
  tags?: string[];
}

const body = (c: Contact) => ({ contactId: c.id, phone: c.phone, name: c.name, email: c.email, tags: c.tags });

@Injectable()
export class ContactsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
  ) {}

  create(tenantId: string, input: ContactInput): Promise<Contact> {
    return this.dataSource.transaction((manager) => this.createIn(manager, tenantId, input));
  }

  /** Inside a caller's transaction (an inbound message from a new number creates its contact). */
  async createIn(manager: EntityManager, tenantId: string, input: ContactInput): Promise<Contact> {
    const contact = await manager.save(
      manager.create(Contact, {
        tenantId,
        phone: input.phone,
        name: input.name ?? null,
        email: input.email ?? null,
        tags: input.tags ?? [],
      }),
    );
    await this.hookbox.triggerEvent(tenantId, 'contact.created', { ...body(contact), createdAt: now() }, { manager });
    return contact;
  }

  update(tenantId: string, id: string, patch: Partial<Omit<ContactInput, 'phone'>>): Promise<Contact> {
    return this.dataSource.transaction(async (manager) => {
      const contact = await manager.findOneBy(Contact, { tenantId, id });
      if (!contact) throw new NotFoundException(`contact ${id} not found`);
      const changes = (['name', 'email', 'tags'] as const).filter(
        (k) => patch[k] !== undefined && JSON.stringify(patch[k]) !== JSON.stringify(contact[k]),
      );
      Object.assign(contact, Object.fromEntries(changes.map((k) => [k, patch[k]])));
      await manager.save(contact);
      await this.hookbox.triggerEvent(
        tenantId,
        'contact.updated',
        { ...body(contact), changes, updatedAt: now() },
        { manager },
      );
      return contact;
    });
  }
}
