/**
 * The CRM's webhook events: each type and its payload (the `data` of the delivered body).
 * The JSON Schemas in ../catalog describe the same payloads for the CRM's customers.
 */
type Uuid = string;
type Iso = string;
type Actor = { kind: 'agent' | 'automation' | 'system'; id: string | null };
export type Status = 'open' | 'pending' | 'resolved' | 'closed';
export type Category = 'marketing' | 'utility' | 'authentication';
type ErrorInfo = { code: string; message: string };
export type MessageKind = 'text' | 'image' | 'audio' | 'video' | 'document' | 'location' | 'template' | 'interactive';
type MessageRef = { messageId: Uuid; conversationId: Uuid; contactId: Uuid };
type ContactBody = { contactId: Uuid; phone: string; name: string | null; email: string | null; tags: string[] };

export interface CrmEvents {
  'message.new': MessageRef & { from: string; type: MessageKind; text: string | null; receivedAt: Iso };
  'message.sent': MessageRef & { to: string; type: MessageKind; text: string | null; sentBy: Actor; sentAt: Iso };
  'message.delivered': MessageRef & { deliveredAt: Iso };
  'message.read': MessageRef & { readAt: Iso };
  'message.failed': MessageRef & { error: ErrorInfo; failedAt: Iso };
  'conversation.created': {
    conversationId: Uuid;
    contactId: Uuid;
    channel: 'whatsapp';
    status: Status;
    createdAt: Iso;
  };
  'conversation.updated': {
    conversationId: Uuid;
    contactId: Uuid;
    changes: string[];
    status: Status;
    labels: string[];
    updatedAt: Iso;
  };
  'conversation.assigned': {
    conversationId: Uuid;
    contactId: Uuid;
    assigneeId: string | null;
    previousAssigneeId: string | null;
    assignedBy: Actor;
    assignedAt: Iso;
  };
  'conversation.resolved': { conversationId: Uuid; contactId: Uuid; resolvedBy: Actor; resolvedAt: Iso };
  'conversation.closed': {
    conversationId: Uuid;
    contactId: Uuid;
    closedBy: Actor;
    reason: string | null;
    closedAt: Iso;
  };
  'contact.created': ContactBody & { createdAt: Iso };
  'contact.updated': ContactBody & { changes: string[]; updatedAt: Iso };
  'campaign.started': { campaignId: Uuid; name: string; audienceSize: number; startedAt: Iso };
  'campaign.completed': {
    campaignId: Uuid;
    name: string;
    stats: { sent: number; delivered: number; read: number; failed: number };
    completedAt: Iso;
  };
  'campaign.failed': { campaignId: Uuid; name: string; error: ErrorInfo; failedAt: Iso };
  'flow.started': { flowId: Uuid; executionId: Uuid; contactId: Uuid; trigger: string; startedAt: Iso };
  'flow.completed': { flowId: Uuid; executionId: Uuid; contactId: Uuid; durationMs: number; completedAt: Iso };
  'flow.failed': {
    flowId: Uuid;
    executionId: Uuid;
    contactId: Uuid;
    failedStep: string;
    error: ErrorInfo;
    failedAt: Iso;
  };
  'automation.triggered': {
    automationId: Uuid;
    runId: Uuid;
    trigger: { event: string; resourceId: string };
    triggeredAt: Iso;
  };
  'automation.completed': { automationId: Uuid; runId: Uuid; actionsRun: number; completedAt: Iso };
  'template.approved': { templateId: string; name: string; language: string; category: Category; approvedAt: Iso };
  'template.rejected': { templateId: string; name: string; language: string; reason: string; rejectedAt: Iso };
}

export type CrmEventType = keyof CrmEvents;
