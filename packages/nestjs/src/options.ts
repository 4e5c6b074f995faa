import type { NotifierOptions, OutboxOptions } from '@hookbox/outbox';
import type { DataSource } from 'typeorm';

/** Injection token of the resolved `HookboxModuleOptions`. */
export const HOOKBOX_OPTIONS = Symbol('HOOKBOX_OPTIONS');

/** Options of `HookboxModule.forRoot` (or what `forRootAsync`'s factory returns). Unknown keys are rejected. */
export interface HookboxModuleOptions {
  /**
   * The TypeORM DataSource hookbox writes through: its name in `TypeOrmModule.forRoot({ name })`,
   * or the DataSource itself. Default: the default DataSource.
   */
  dataSource?: string | DataSource;
  /**
   * Refuse a `triggerEvent`/`enqueue` outside a transaction (HookboxError code
   * `HOOKBOX_NO_TRANSACTION`) instead of writing the event in its own short transaction.
   * Default false.
   */
  strict?: boolean;
  /**
   * Attach the post-commit notifier to the DataSource's pool at bootstrap (detached at
   * shutdown), so the relay wakes right after a commit instead of at its next poll.
   * `false` turns it off; an object tunes it. Default true.
   */
  notifier?: boolean | NotifierOptions;
  /** Options of the underlying `createOutbox` (payload limit, batch size, prepared statements). */
  outbox?: OutboxOptions;
}

/** `HookboxModule.forRoot` also takes `isGlobal`. */
export interface HookboxModuleRootOptions extends HookboxModuleOptions {
  /** Register the module globally, so feature modules inject `HookboxService` without importing it. Default false. */
  isGlobal?: boolean;
}

/** `HookboxModule.forRootAsync`: options computed by a factory with injected dependencies. */
export interface HookboxModuleAsyncOptions {
  // biome-ignore lint/suspicious/noExplicitAny: Nest's own ModuleMetadata['imports'] type
  imports?: any[];
  // biome-ignore lint/suspicious/noExplicitAny: Nest injection tokens
  inject?: any[];
  // biome-ignore lint/suspicious/noExplicitAny: injected values are untyped in Nest
  useFactory: (...args: any[]) => HookboxModuleOptions | Promise<HookboxModuleOptions>;
  /** As in `forRoot`. Default false. */
  isGlobal?: boolean;
}

const KNOWN = ['dataSource', 'strict', 'notifier', 'outbox'] as const;

/** Validates once, at the boundary: unknown keys and wrong types name the field. */
export function checkOptions(options: HookboxModuleOptions): HookboxModuleOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('HookboxModule options: must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!(KNOWN as readonly string[]).includes(key)) {
      throw new TypeError(`HookboxModule options.${key}: is not an option (known: ${KNOWN.join(', ')})`);
    }
  }
  if (options.strict !== undefined && typeof options.strict !== 'boolean') {
    throw new TypeError('HookboxModule options.strict: must be true or false');
  }
  const n = options.notifier;
  if (n !== undefined && typeof n !== 'boolean' && (n === null || typeof n !== 'object')) {
    throw new TypeError('HookboxModule options.notifier: must be true, false or notifier options');
  }
  const ds = options.dataSource;
  if (ds !== undefined && typeof ds !== 'string' && (ds === null || typeof ds !== 'object')) {
    throw new TypeError('HookboxModule options.dataSource: must be a DataSource name or a DataSource');
  }
  return options;
}
