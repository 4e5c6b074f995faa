/** Errors of the CLI. A UsageError exits 2; anything else that reaches main exits 1. */
export class UsageError extends Error {
  readonly code = 'HOOKBOX_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
