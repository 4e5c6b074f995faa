import {
  createOutbox,
  type EnqueueResult,
  type EventMap,
  type EventTypeOf,
  HookboxError,
  type Notifier,
  type Outbox,
  type TypedEvent,
  ValidationError,
} from '@hookbox/outbox';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { HOOKBOX_OPTIONS, type HookboxModuleOptions } from './options.js';

/** Per-call options of `triggerEvent`, `enqueue` and `enqueueMany`. Unknown keys are rejected. */
export interface TriggerOptions {
  /**
   * The EntityManager of your transaction (`dataSource.transaction(async (manager) => …)`):
   * the event commits or rolls back with it. Without it, hookbox joins a `@Transactional()`
   * (typeorm-transactional) transaction of the current context, if any.
   */
  manager?: EntityManager;
  /** A second event with the same key for the same tenant returns the first one's id. */
  idempotencyKey?: string;
  /**
   * Events of the tenant with the same ordering key (e.g. `conversation:42`) are delivered
   * to each endpoint one at a time, in the commit order of their transactions. Your
   * transaction holds the key until it ends; see the README's "Ordering".
   */
  orderingKey?: string;
}

/** An event written through `enqueue`/`enqueueMany`. */
export type HookboxEvent<E extends EventMap> = TypedEvent<E>;

const inTransaction = (m: EntityManager | undefined): m is EntityManager =>
  m?.queryRunner?.isTransactionActive === true;

const TRIGGER_KEYS: readonly string[] = ['manager', 'idempotencyKey', 'orderingKey'];
const WRITE_KEYS: readonly string[] = ['manager'];

/**
 * The per-call options, checked before anything is written: a key that is not an option
 * (`{ entityManager }`, or an `idempotencyKey` given to `enqueue`, whose events carry their
 * own) would otherwise be ignored, and the event written apart from the caller's
 * transaction or without its key. Throws ValidationError naming the key (rule `unknown`).
 */
function checkTriggerOptions(options: unknown, known: readonly string[], what: string): EntityManager | undefined {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ValidationError('options', 'type', 'must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ValidationError(key, 'unknown', `is not a field of ${what} (known: ${known.join(', ')})`);
    }
  }
  const manager = (options as TriggerOptions).manager;
  if (manager !== undefined && (manager === null || typeof manager !== 'object')) {
    throw new ValidationError('manager', 'type', 'must be the EntityManager of your transaction, or left out');
  }
  return manager;
}

/**
 * Writes webhook events in the caller's transaction. Type it with your event map where you
 * inject it: `constructor(private readonly hookbox: HookboxService<CrmEvents>) {}`.
 *
 * Which transaction: the `manager` passed in, else the transaction typeorm-transactional's
 * `@Transactional()` opened in this context (it makes `dataSource.manager` that
 * transaction's manager), else — unless `strict` — a short transaction of its own, which
 * commits the event apart from any business write (no atomicity with it).
 */
@Injectable()
export class HookboxService<E extends EventMap = EventMap> implements OnApplicationBootstrap, OnModuleDestroy {
  /** The outbox the service writes through (typed enqueue, enqueueMany). */
  readonly outbox: Outbox<E>;
  private ds: DataSource | undefined;
  private notifier: Notifier | undefined;

  constructor(
    @Inject(HOOKBOX_OPTIONS) private readonly options: HookboxModuleOptions,
    @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
  ) {
    this.outbox = createOutbox<E>(options.outbox ?? {});
  }

  /** The TypeORM DataSource events are written through. */
  get dataSource(): DataSource {
    if (!this.ds) {
      const ds = this.options.dataSource;
      const found =
        ds !== undefined && typeof ds === 'object'
          ? ds
          : this.moduleRef.get<DataSource>(getDataSourceToken(ds), { strict: false });
      // Not cached while TypeORM has not created it yet (asked during module init).
      if (!found) {
        throw new HookboxError(
          'HOOKBOX_INVALID_EXECUTOR',
          `hookbox: the TypeORM DataSource ${typeof ds === 'string' ? `'${ds}' ` : ''}is not available yet (or not registered)`,
        );
      }
      this.ds = found;
    }
    return this.ds;
  }

  onApplicationBootstrap(): void {
    const n = this.options.notifier ?? true;
    if (n === false) return;
    this.notifier = this.outbox.attachNotifier(this.dataSource, n === true ? {} : n);
  }

  // Before TypeORM destroys the DataSource (its own hook runs at application shutdown).
  async onModuleDestroy(): Promise<void> {
    const notifier = this.notifier;
    this.notifier = undefined;
    if (!notifier) return;
    notifier.detach();
    await notifier.flush();
  }

  /**
   * The seed's call: `triggerEvent(tenantId, 'message.new', payload, { manager })`. Writes
   * the event in the caller's transaction (see the class comment) and returns its id.
   */
  async triggerEvent<T extends EventTypeOf<E>>(
    tenantId: string,
    type: T,
    payload: E[T],
    options: TriggerOptions = {},
  ): Promise<EnqueueResult> {
    const manager = checkTriggerOptions(options, TRIGGER_KEYS, 'triggerEvent options');
    const event = {
      tenantId,
      type,
      payload,
      idempotencyKey: options.idempotencyKey ?? null,
      orderingKey: options.orderingKey ?? null,
    };
    return this.run(manager, (m) => this.outbox.enqueue(m, event));
  }

  /** One typed event; `event.idempotencyKey` as in the library. The only option is `manager`. */
  async enqueue<T extends EventTypeOf<E>>(
    event: TypedEvent<E, T>,
    options: Pick<TriggerOptions, 'manager'> = {},
  ): Promise<EnqueueResult> {
    const manager = checkTriggerOptions(options, WRITE_KEYS, 'enqueue options');
    return this.run(manager, (m) => this.outbox.enqueue(m, event as never));
  }

  /** Many typed events in one statement, all in the same transaction. The only option is `manager`. */
  async enqueueMany<T extends EventTypeOf<E>>(
    events: readonly TypedEvent<E, T>[],
    options: Pick<TriggerOptions, 'manager'> = {},
  ): Promise<EnqueueResult[]> {
    const manager = checkTriggerOptions(options, WRITE_KEYS, 'enqueueMany options');
    return this.run(manager, (m) => this.outbox.enqueueMany(m, events));
  }

  private async run<R>(manager: EntityManager | undefined, write: (m: EntityManager) => Promise<R>): Promise<R> {
    if (inTransaction(manager)) return write(manager);
    if (manager === undefined) {
      // typeorm-transactional patches `dataSource.manager` to return the manager of the
      // transaction active in this async context.
      const contextual = this.dataSource.manager;
      if (inTransaction(contextual)) return write(contextual);
    }
    if (this.options.strict) {
      throw new HookboxError(
        'HOOKBOX_NO_TRANSACTION',
        manager
          ? 'hookbox (strict): the EntityManager passed is not inside a transaction; pass the manager of dataSource.transaction(async (manager) => ...)'
          : 'hookbox (strict): no transaction to join; pass { manager } from dataSource.transaction(...) or call from a @Transactional() method',
      );
    }
    // Outside any transaction: a short one of our own (the event commits on its own).
    return (manager ?? this.dataSource.manager).transaction((m) => write(m));
  }
}
