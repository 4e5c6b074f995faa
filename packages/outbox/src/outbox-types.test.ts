/**
 * Type tests (checked by `pnpm typecheck`; the runtime part only keeps vitest happy):
 * interface event maps and generic wrappers type-check, wrong payloads and unknown types
 * still fail (each `@ts-expect-error` fails the typecheck if the line stops being an error).
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { Executor } from './executor.js';
import { createOutbox, type EnqueueResult, type Outbox, type TypedEvent } from './outbox.js';

interface CrmEvents {
  'message.new': { id: string; text: string };
  'contact.created': { contactId: string };
}

type AliasEvents = { 'a.b': { n: number } };

declare const tx: Executor;

// A generic wrapper, as a Nest service writes it.
function emit<K extends keyof CrmEvents & string>(outbox: Outbox<CrmEvents>, type: K, payload: CrmEvents[K]) {
  return outbox.enqueue(tx, { tenantId: 't', type, payload });
}

function emitMany<K extends keyof CrmEvents & string>(outbox: Outbox<CrmEvents>, events: TypedEvent<CrmEvents, K>[]) {
  return outbox.enqueueMany(tx, events);
}

function typeChecks() {
  const outbox = createOutbox<CrmEvents>();
  const aliased = createOutbox<AliasEvents>();
  const untyped = createOutbox();

  void outbox.enqueue(tx, { tenantId: 't', type: 'message.new', payload: { id: '1', text: 'hi' } });
  void aliased.enqueue(tx, { tenantId: 't', type: 'a.b', payload: { n: 1 } });
  void untyped.enqueue(tx, { tenantId: 't', type: 'anything.goes', payload: { any: 'thing' } });
  void emit(outbox, 'contact.created', { contactId: 'c' });

  // @ts-expect-error wrong payload for the type
  void outbox.enqueue(tx, { tenantId: 't', type: 'message.new', payload: { contactId: 'c' } });
  // @ts-expect-error unknown event type
  void outbox.enqueue(tx, { tenantId: 't', type: 'message.gone', payload: { id: '1', text: 'x' } });
  // @ts-expect-error wrong payload through the generic wrapper
  void emit(outbox, 'message.new', { contactId: 'c' });
  // @ts-expect-error unknown type through the generic wrapper
  void emit(outbox, 'nope.nope', {});

  const events: TypedEvent<CrmEvents>[] = [
    { tenantId: 't', type: 'message.new', payload: { id: '1', text: 'x' } },
    { tenantId: 't', type: 'contact.created', payload: { contactId: 'c' } },
  ];
  void outbox.enqueueMany(tx, events);
  // @ts-expect-error a mismatched pair in a batch
  void outbox.enqueueMany(tx, [{ tenantId: 't', type: 'contact.created', payload: { id: '1', text: 'x' } }]);

  void emitMany(outbox, events);
  // @ts-expect-error a mismatched pair through the generic batch wrapper
  void emitMany(outbox, [{ tenantId: 't', type: 'message.new', payload: { contactId: 'c' } }]);

  // A typed outbox goes where an untyped one is expected.
  const general: Outbox = outbox;
  const general2: Outbox = aliased;
  void general;
  void general2;
  expectTypeOf(outbox.enqueue).returns.toEqualTypeOf<Promise<EnqueueResult>>();
}

describe('outbox types', () => {
  it('are checked by pnpm typecheck', () => {
    expectTypeOf(typeChecks).toBeFunction();
  });
});
