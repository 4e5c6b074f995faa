/**
 * The CRM's business API (what the seed's services expose). Each call is one business
 * transaction that also writes its webhook events; tenant from `x-tenant-id` (see tenant.ts).
 */
import { BadRequestException, Body, Controller, HttpCode, Param, ParseUUIDPipe, Patch, Post } from '@nestjs/common';
import { AutomationsService } from './automations.service.js';
import { CampaignsService } from './campaigns.service.js';
import { ContactsService } from './contacts.service.js';
import { ConversationsService } from './conversations.service.js';
import type { Category, Status } from './events.js';
import { FlowsService } from './flows.service.js';
import { MessagesService } from './messages.service.js';
import { TemplatesService } from './templates.service.js';
import { TenantId } from './tenant.js';

type Json = Record<string, unknown>;
const uuid = new ParseUUIDPipe();
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function str(body: Json, key: string, optional = false): string {
  const v = body?.[key];
  if (optional && (v === undefined || v === null)) return v as never;
  if (typeof v !== 'string' || v === '') throw new BadRequestException(`${key}: required non-empty string`);
  return v;
}
function strings(body: Json, key: string): string[] | undefined {
  const v = body?.[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new BadRequestException(`${key}: must be an array of strings`);
  }
  return v;
}
function oneOf<T extends string>(body: Json, key: string, values: readonly T[], optional = false): T {
  const v = body?.[key];
  if (optional && v === undefined) return v as never;
  if (!values.includes(v as T)) throw new BadRequestException(`${key}: must be one of ${values.join(', ')}`);
  return v as T;
}
function phone(body: Json, key: string): string {
  const v = str(body, key);
  if (!/^\+[1-9][0-9]{6,14}$/.test(v))
    throw new BadRequestException(`${key}: must be an E.164 number (+4915112345678)`);
  return v;
}
function error(body: Json) {
  const e = body?.error as Json;
  return { code: str(e, 'code'), message: str(e, 'message') };
}
const agent = (body: Json) => ({ kind: 'agent' as const, id: str(body, 'agentId') });
const STATUSES: readonly Status[] = ['open', 'pending', 'resolved', 'closed'];

@Controller()
export class CrmController {
  constructor(
    private readonly contacts: ContactsService,
    private readonly conversations: ConversationsService,
    private readonly messages: MessagesService,
    private readonly campaigns: CampaignsService,
    private readonly flows: FlowsService,
    private readonly automations: AutomationsService,
    private readonly templates: TemplatesService,
  ) {}

  @Post('contacts')
  createContact(@TenantId() t: string, @Body() b: Json) {
    return this.contacts.create(t, {
      phone: phone(b, 'phone'),
      name: str(b, 'name', true),
      email: str(b, 'email', true),
      tags: strings(b, 'tags'),
    });
  }

  @Patch('contacts/:id')
  updateContact(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.contacts.update(t, id, {
      name: str(b, 'name', true),
      email: str(b, 'email', true),
      tags: strings(b, 'tags'),
    });
  }

  /** WhatsApp inbound webhook, reduced to what the CRM stores. */
  @Post('inbound')
  receive(@TenantId() t: string, @Body() b: Json) {
    return this.messages.receive(t, { from: phone(b, 'from'), text: str(b, 'text', true) });
  }

  @Post('conversations/:id/messages')
  send(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.messages.send(t, id, str(b, 'text'), agent(b));
  }

  /** WhatsApp status callback for an outbound message. */
  @Post('messages/:id/status')
  @HttpCode(200)
  status(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    const status = oneOf(b, 'status', ['delivered', 'read', 'failed'] as const);
    return this.messages.status(t, id, status === 'failed' ? { status, error: error(b) } : { status });
  }

  @Patch('conversations/:id')
  updateConversation(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.conversations.update(t, id, {
      status: oneOf(b, 'status', STATUSES, true),
      labels: strings(b, 'labels'),
    });
  }

  @Post('conversations/:id/assign')
  @HttpCode(200)
  assign(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.conversations.assign(t, id, str(b, 'assigneeId', true) ?? null, agent(b));
  }

  @Post('conversations/:id/resolve')
  @HttpCode(200)
  resolve(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.conversations.resolve(t, id, agent(b));
  }

  @Post('conversations/:id/close')
  @HttpCode(200)
  close(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.conversations.close(t, id, { kind: 'system', id: null }, str(b, 'reason', true) ?? null);
  }

  @Post('campaigns')
  startCampaign(@TenantId() t: string, @Body() b: Json) {
    const size = b?.audienceSize;
    if (!Number.isSafeInteger(size) || (size as number) < 0) {
      throw new BadRequestException('audienceSize: must be a non-negative integer');
    }
    return this.campaigns.start(t, str(b, 'name'), size as number);
  }

  @Post('campaigns/:id/complete')
  @HttpCode(200)
  completeCampaign(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    const s = (b?.stats ?? {}) as Record<string, unknown>;
    const n = (k: string) => {
      if (!Number.isSafeInteger(s[k]) || (s[k] as number) < 0)
        throw new BadRequestException(`stats.${k}: integer >= 0`);
      return s[k] as number;
    };
    return this.campaigns.complete(t, id, {
      sent: n('sent'),
      delivered: n('delivered'),
      read: n('read'),
      failed: n('failed'),
    });
  }

  @Post('campaigns/:id/fail')
  @HttpCode(200)
  failCampaign(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.campaigns.fail(t, id, error(b));
  }

  @Post('flows/:flowId/executions')
  startFlow(@TenantId() t: string, @Param('flowId', uuid) flowId: string, @Body() b: Json) {
    const contactId = str(b, 'contactId');
    if (!UUID_RE.test(contactId)) throw new BadRequestException('contactId: must be a UUID');
    return this.flows.start(t, flowId, contactId, str(b, 'trigger'));
  }

  @Post('flow-executions/:id/complete')
  @HttpCode(200)
  completeFlow(@TenantId() t: string, @Param('id', uuid) id: string) {
    return this.flows.complete(t, id);
  }

  @Post('flow-executions/:id/fail')
  @HttpCode(200)
  failFlow(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    return this.flows.fail(t, id, str(b, 'failedStep'), error(b));
  }

  @Post('automations/:automationId/runs')
  triggerAutomation(@TenantId() t: string, @Param('automationId', uuid) automationId: string, @Body() b: Json) {
    return this.automations.trigger(t, automationId, { event: str(b, 'event'), resourceId: str(b, 'resourceId') });
  }

  @Post('automation-runs/:id/complete')
  @HttpCode(200)
  completeAutomation(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    const actionsRun = b?.actionsRun;
    if (!Number.isSafeInteger(actionsRun) || (actionsRun as number) < 0) {
      throw new BadRequestException('actionsRun: must be a non-negative integer');
    }
    return this.automations.complete(t, id, actionsRun as number);
  }

  @Post('templates')
  submitTemplate(@TenantId() t: string, @Body() b: Json) {
    const category = oneOf<Category>(b, 'category', ['marketing', 'utility', 'authentication']);
    return this.templates.submit(t, { name: str(b, 'name'), language: str(b, 'language'), category });
  }

  /** Meta's review callback. */
  @Post('templates/:id/review')
  @HttpCode(200)
  reviewTemplate(@TenantId() t: string, @Param('id', uuid) id: string, @Body() b: Json) {
    if (b?.approved === true) return this.templates.review(t, id, { approved: true });
    if (b?.approved === false) return this.templates.review(t, id, { approved: false, reason: str(b, 'reason') });
    throw new BadRequestException('approved: must be true or false');
  }
}
