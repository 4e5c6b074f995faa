/**
 * The executors `enqueue` and the other library functions accept. hookbox never opens a
 * connection or a transaction of its own: it runs its SQL on what the caller hands it, so
 * the caller's commit or rollback decides whether the write exists.
 */
import { type SQL, sql } from 'drizzle-orm';
import { HookboxError } from './errors.js';

/** A `pg` Client or PoolClient, TypeORM's QueryRunner or EntityManager: anything with `query(text, values)`. */
export interface QueryExecutor {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** A drizzle node-postgres database or transaction (`db` or the `tx` in `db.transaction`). */
export interface DrizzleExecutor {
  execute(query: SQL): Promise<unknown>;
}

export type Executor = QueryExecutor | DrizzleExecutor;

type Row = Record<string, unknown>;

// Split once per statement text: the literal parts between `$n` placeholders.
const splitCache = new Map<string, { parts: string[]; indexes: number[] }>();

function toDrizzleSql(text: string, values: readonly unknown[]): SQL {
  let split = splitCache.get(text);
  if (!split) {
    const pieces = text.split(/\$(\d+)/);
    split = { parts: [], indexes: [] };
    for (let i = 0; i < pieces.length; i++) {
      if (i % 2 === 0) split.parts.push(pieces[i] as string);
      else split.indexes.push(Number(pieces[i]) - 1);
    }
    splitCache.set(text, split);
  }
  const chunks: SQL[] = [];
  for (let i = 0; i < split.parts.length; i++) {
    chunks.push(sql.raw(split.parts[i] as string));
    if (i < split.indexes.length) chunks.push(sql`${sql.param(values[split.indexes[i] as number])}`);
  }
  return sql.join(chunks);
}

/** A node-postgres Client, PoolClient or Pool: their `query` also takes `{ name, text, values }`. */
function isNodePostgres(executor: object): boolean {
  return 'connectionParameters' in executor || ('totalCount' in executor && 'idleCount' in executor);
}

/**
 * Runs one statement with positional parameters on the caller's executor and returns its
 * rows. Every statement hookbox sends goes through here. With `name`, a node-postgres
 * executor prepares the statement once per connection and reuses the plan (the enqueue hot
 * path); other executors run it as usual.
 */
export async function runQuery<R extends Row = Row>(
  executor: Executor,
  text: string,
  values: readonly unknown[] = [],
  name?: string,
): Promise<R[]> {
  let result: unknown;
  if (executor && typeof (executor as QueryExecutor).query === 'function') {
    result =
      name !== undefined && isNodePostgres(executor)
        ? await (executor as unknown as { query(c: object): Promise<unknown> }).query({ name, text, values })
        : await (executor as QueryExecutor).query(text, values as unknown[]);
  } else if (executor && typeof (executor as DrizzleExecutor).execute === 'function') {
    result = await (executor as DrizzleExecutor).execute(toDrizzleSql(text, values));
  } else {
    throw new HookboxError(
      'HOOKBOX_INVALID_EXECUTOR',
      'executor: expected a drizzle database/transaction, a pg Client/PoolClient, or an object with query(text, values)',
    );
  }
  if (Array.isArray(result)) {
    // TypeORM's postgres driver answers an UPDATE or DELETE with [rows, rowCount].
    if (
      result.length === 2 &&
      Array.isArray(result[0]) &&
      typeof result[1] === 'number' &&
      typeormKind(executor as object) !== null
    ) {
      return result[0] as R[];
    }
    return result as R[];
  }
  const rows = (result as { rows?: unknown } | null)?.rows;
  return Array.isArray(rows) ? (rows as R[]) : [];
}

/** True for TypeORM objects that can run SQL: EntityManager, QueryRunner, Repository, DataSource. */
function typeormKind(executor: object): 'manager' | 'queryRunner' | 'repository' | 'dataSource' | null {
  const marker = (executor as { '@instanceof'?: unknown })['@instanceof'];
  if (marker === Symbol.for('EntityManager')) return 'manager';
  if (marker === Symbol.for('DataSource')) return 'dataSource';
  if ('isTransactionActive' in executor && 'manager' in executor) return 'queryRunner';
  if ('manager' in executor && 'metadata' in executor && 'target' in executor) return 'repository';
  return null;
}

/** Whether a TypeORM executor runs inside an active transaction; null for other executors. */
export function typeormInTransaction(executor: Executor): boolean | null {
  if (!executor || typeof executor !== 'object') return null;
  const kind = typeormKind(executor);
  const x = executor as {
    isTransactionActive?: boolean;
    queryRunner?: { isTransactionActive?: boolean };
    manager?: { queryRunner?: { isTransactionActive?: boolean } };
  };
  switch (kind) {
    case 'manager':
      return x.queryRunner?.isTransactionActive === true;
    case 'queryRunner':
      return x.isTransactionActive === true;
    case 'repository':
      return (x.queryRunner ?? x.manager?.queryRunner)?.isTransactionActive === true;
    case 'dataSource':
      return false;
    default:
      return null;
  }
}

/**
 * The `requireTransaction` check: refuses a TypeORM EntityManager, QueryRunner, Repository
 * or DataSource outside an active transaction (its write would commit on its own, apart
 * from the business write). Other executors cannot be inspected and pass.
 */
export function assertInTransaction(executor: Executor): void {
  if (typeormInTransaction(executor) === false) {
    throw new HookboxError(
      'HOOKBOX_NO_TRANSACTION',
      'executor: this TypeORM executor is not inside an active transaction, so the event would be written apart from your business write; pass the EntityManager of dataSource.transaction(async (manager) => ...) or a QueryRunner after startTransaction()',
    );
  }
}
