/**
 * The CLI's error. Bad options have one convention: outside `commands/` (and `cli.ts`),
 * every module throws the library's `ValidationError` (`code: 'HOOKBOX_INVALID_INPUT'`,
 * `field`, `rule`), whose `field` is what the caller passed: an option name
 * (`olderThanMs`, `retry.maxAttempts`) or, where the input is flag or environment text
 * (config.ts, duration.ts, option-text.ts), the flag (`--concurrency`). Only `commands/`
 * throws a UsageError, or maps a library field to the flag the operator typed
 * (commands/output.ts withFlagNames). main exits 2 for both; anything else exits 1.
 */
export class UsageError extends Error {
  readonly code = 'HOOKBOX_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
