import { HookboxService } from '@hookbox/nestjs';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ContactsService } from './contacts.service.js';
import { ConversationsService } from './conversations.service.js';
import { Contact, Conversation, Message } from './entities.js';
import type { CrmEvents } from './events.js';
import { now } from './tenant.js';

type Actor = CrmEvents['message.sent']['sentBy'];

@Injectable()
export class MessagesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hookbox: HookboxService<CrmEvents>,
    private readonly contacts: ContactsService,
    private readonly conversations: ConversationsService,
  ) {}

  /**
   * An inbound WhatsApp message: finds or creates the contact and its open conversation and
   * stores the message — one transaction, so a failure anywhere leaves none of the rows and
   * none of the events (contact.created, conversation.created, message.new).
   */
  receive(tenantId: string, input: { from: string; text: string | null }): Promise<Message> {
    return this.dataSource.transaction(async (manager) => {
      const contact =
        (await manager.findOneBy(Contact, { tenantId, phone: input.from })) ??
        (await this.contacts.createIn(manager, tenantId, { phone: input.from }));
      const conversation =
        (await manager.findOne(Conversation, {
          where: { tenantId, contactId: contact.id, status: 'open' },
          order: { createdAt: 'DESC' },
        })) ?? (await this.conversations.openIn(manager, tenantId, contact.id));
      const message = await manager.save(
        manager.create(Message, {
          tenantId,
          conversationId: conversation.id,
          contactId: contact.id,
          direction: 'inbound',
          kind: 'text',
          text: input.text,
        }),
      );
      await this.hookbox.triggerEvent(
        tenantId,
        'message.new',
        {
          messageId: message.id,
          conversationId: conversation.id,
          contactId: contact.id,
          from: contact.phone,
          type: 'text',
          text: message.text,
          receivedAt: now(),
        },
        { manager, idempotencyKey: `message.new:${message.id}` },
      );
      return message;
    });
  }

  /** An agent's reply. */
  send(tenantId: string, conversationId: string, text: string, sentBy: Actor): Promise<Message> {
    return this.dataSource.transaction(async (manager) => {
      const conversation = await this.conversations.get(manager, tenantId, conversationId);
      const contact = await manager.findOneByOrFail(Contact, { tenantId, id: conversation.contactId });
      const message = await manager.save(
        manager.create(Message, {
          tenantId,
          conversationId,
          contactId: contact.id,
          direction: 'outbound',
          kind: 'text',
          text,
          status: 'sent',
        }),
      );
      await this.hookbox.triggerEvent(
        tenantId,
        'message.sent',
        {
          messageId: message.id,
          conversationId,
          contactId: contact.id,
          to: contact.phone,
          type: 'text',
          text,
          sentBy,
          sentAt: now(),
        },
        { manager },
      );
      return message;
    });
  }

  /** A status callback from WhatsApp for an outbound message. */
  status(
    tenantId: string,
    id: string,
    update: { status: 'delivered' | 'read' } | { status: 'failed'; error: { code: string; message: string } },
  ): Promise<Message> {
    return this.dataSource.transaction(async (manager) => {
      const m = await manager.findOneBy(Message, { tenantId, id });
      if (!m) throw new NotFoundException(`message ${id} not found`);
      m.status = update.status;
      await manager.save(m);
      const ref = { messageId: m.id, conversationId: m.conversationId, contactId: m.contactId };
      const opts = { manager, idempotencyKey: `message.${update.status}:${m.id}` };
      if (update.status === 'failed') {
        await this.hookbox.triggerEvent(
          tenantId,
          'message.failed',
          { ...ref, error: update.error, failedAt: now() },
          opts,
        );
      } else if (update.status === 'delivered') {
        await this.hookbox.triggerEvent(tenantId, 'message.delivered', { ...ref, deliveredAt: now() }, opts);
      } else {
        await this.hookbox.triggerEvent(tenantId, 'message.read', { ...ref, readAt: now() }, opts);
      }
      return m;
    });
  }
}
