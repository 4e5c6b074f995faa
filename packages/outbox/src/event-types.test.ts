import { describe, expect, it } from 'vitest';
import {
  isValidEventPattern,
  isValidEventType,
  MAX_EVENT_TYPE_LENGTH,
  matchesAny,
  matchesEventType,
} from './event-types.js';

// Realistic types for the pattern tests. The product's full catalog is data in
// apps/example-crm/catalog (test/catalog.test.ts checks it against these same rules).
const TYPES = [
  'message.new',
  'message.sent',
  'message.delivered',
  'conversation.created',
  'conversation.updated',
  'conversation.assigned',
  'conversation.resolved',
  'conversation.closed',
  'contact.created',
  'template.rejected',
];

describe('matchesEventType', () => {
  it.each([
    // exact
    ['message.new', 'message.new', true],
    ['message.new', 'message.sent', false],
    ['message.new', 'message.new.extra', false],
    ['message.new', 'message', false],
    ['message', 'message', true],
    // prefix wildcard
    ['message.*', 'message.new', true],
    ['message.*', 'message.a.b', true],
    ['message.*', 'message', false],
    ['message.*', 'message.', false],
    ['message.*', 'messages.new', false],
    ['message.*', 'xmessage.new', false],
    ['message.*', 'conversation.new', false],
    ['message.status.*', 'message.status.read', true],
    ['message.status.*', 'message.new', false],
    // everything
    ['*', 'message.new', true],
    ['*', 'a', true],
    ['*', 'template.rejected', true],
  ])('%s vs %s → %s', (pattern, type, expected) => {
    expect(matchesEventType(pattern, type)).toBe(expected);
  });

  it('a pattern without a wildcard matches only itself among the types', () => {
    for (const pattern of TYPES) {
      expect(TYPES.filter((t) => matchesEventType(pattern, t))).toEqual([pattern]);
    }
  });

  it('`conversation.*` selects exactly the conversation types', () => {
    const picked = TYPES.filter((t) => matchesEventType('conversation.*', t));
    expect(picked).toEqual(TYPES.filter((t) => t.split('.')[0] === 'conversation'));
    expect(picked.length).toBe(5);
  });

  it('matchesAny is true when any pattern matches', () => {
    expect(matchesAny(['contact.*', 'message.new'], 'message.new')).toBe(true);
    expect(matchesAny(['contact.*', 'message.new'], 'contact.updated')).toBe(true);
    expect(matchesAny(['contact.*', 'message.new'], 'message.sent')).toBe(false);
    expect(matchesAny([], 'message.new')).toBe(false);
  });
});

describe('isValidEventPattern', () => {
  it.each(['message.new', 'message.*', '*', 'a', 'message.status.*', 'flow_v2.step-done', 'a1.b2'])(
    'accepts %j',
    (pattern) => {
      expect(isValidEventPattern(pattern)).toBe(true);
    },
  );

  it.each([
    'message*',
    '*.new',
    'message.**',
    'message.*.new',
    '',
    ' ',
    '**',
    '.*',
    'message.',
    '.message',
    'message..new',
    'Message.New',
    'MESSAGE.*',
    'message new',
    'message.new ',
    'message.new\n',
    'méssage.new',
  ])('rejects %j', (pattern) => {
    expect(isValidEventPattern(pattern)).toBe(false);
  });

  it('rejects patterns over the length limit and accepts ones at it', () => {
    const at = 'a'.repeat(MAX_EVENT_TYPE_LENGTH);
    expect(isValidEventPattern(at)).toBe(true);
    expect(isValidEventPattern(`${at}a`)).toBe(false);
    expect(isValidEventPattern(`${'a'.repeat(MAX_EVENT_TYPE_LENGTH - 2)}.*`)).toBe(true);
    expect(isValidEventPattern(`${'a'.repeat(MAX_EVENT_TYPE_LENGTH - 1)}.*`)).toBe(false);
  });
});

describe('isValidEventType', () => {
  it('accepts well-formed types', () => {
    for (const t of TYPES) expect(isValidEventType(t)).toBe(true);
  });

  it.each(['message.*', '*', 'Message.New', 'message..new', 'message new', '.x', '', 'x.', 'message.new\n'])(
    'rejects %j (wildcards are patterns, not types)',
    (type) => {
      expect(isValidEventType(type)).toBe(false);
    },
  );

  it('enforces the length limit', () => {
    expect(isValidEventType('a'.repeat(MAX_EVENT_TYPE_LENGTH))).toBe(true);
    expect(isValidEventType('a'.repeat(MAX_EVENT_TYPE_LENGTH + 1))).toBe(false);
  });
});
