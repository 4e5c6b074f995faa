/**
 * hookbox's error hierarchy. Every error has a stable `code` to branch on; messages name
 * the field and the rule so a caller can fix the input without reading our source.
 */
export type HookboxErrorCode =
  | 'HOOKBOX_INVALID_INPUT'
  | 'HOOKBOX_NOT_FOUND'
  | 'HOOKBOX_INVALID_EXECUTOR'
  | 'HOOKBOX_NO_TRANSACTION'
  | 'HOOKBOX_WEBHOOK_VERIFICATION'
  | 'HOOKBOX_DATABASE';

export class HookboxError extends Error {
  readonly code: HookboxErrorCode;
  constructor(code: HookboxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HookboxError';
    this.code = code;
  }
}

/** Bad input from the caller. Thrown before anything is written. */
export class ValidationError extends HookboxError {
  /** The offending field, e.g. `type` or `payload.items[3]`. */
  readonly field: string;
  /** The rule it broke, e.g. `format`, `max_bytes`, `required`. */
  readonly rule: string;
  constructor(field: string, rule: string, message: string, options?: { cause?: unknown }) {
    super('HOOKBOX_INVALID_INPUT', `${field}: ${message}`, options);
    this.name = 'ValidationError';
    this.field = field;
    this.rule = rule;
  }
}

/** The thing asked for does not exist for this tenant (also for another tenant's id). */
export class NotFoundError extends HookboxError {
  constructor(what: string, id: string) {
    super('HOOKBOX_NOT_FOUND', `${what} ${id} not found`);
    this.name = 'NotFoundError';
  }
}

/** Why a webhook failed verification: a stable value to branch on (the message is for people). */
export type WebhookVerificationReason =
  | 'missing_headers'
  | 'invalid_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_too_new'
  | 'no_matching_signature'
  | 'invalid_body';

/** A webhook's signature, timestamp or headers did not check out. */
export class WebhookVerificationError extends HookboxError {
  readonly reason: WebhookVerificationReason;
  constructor(reason: WebhookVerificationReason, message: string) {
    super('HOOKBOX_WEBHOOK_VERIFICATION', message);
    this.name = 'WebhookVerificationError';
    this.reason = reason;
  }
}
