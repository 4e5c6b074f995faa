import { ValidationError } from '@hookbox/outbox';
import { describe, expect, it } from 'vitest';
import { formatDuration, MAX_DURATION_MS, parseDuration, parseDurationList } from './duration.js';

const F = '--poll-interval';

/** The ValidationError `fn` throws, with the field it was given. */
function usageError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1.5s', 1_500],
    ['0.5m', 30_000],
    ['.5s', 500],
    ['0', 0],
    ['0s', 0],
    ['0ms', 0],
    [' 5s ', 5_000],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['1d2h3m4s5ms', 93_784_005],
    ['365d', 365 * 86_400_000],
  ])('parses %j as %d ms', (text, ms) => {
    expect(parseDuration(text, F)).toBe(ms);
  });

  it('rounds fractions of a millisecond to the nearest', () => {
    expect(parseDuration('1.4ms', F)).toBe(1);
    expect(parseDuration('1.6ms', F)).toBe(2);
  });

  it('names the field, the rule and the input in its message', () => {
    expect(usageError(() => parseDuration('abc', F)).message).toBe(
      '--poll-interval: must be a duration like 250ms, 5s, 5m or 2h (got "abc")',
    );
  });

  it.each(['', '   ', 'abc', '5x', '5 s', '5S', 's', '1e3s', '5s!', '1.s', '5s,5m', '+5s', 'ms'])(
    'rejects %j as not a duration',
    (text) => {
      const err = usageError(() => parseDuration(text, F));
      expect(err.message).toMatch(/^--poll-interval: /);
      expect(err.message).toContain(`(got ${JSON.stringify(text)})`);
      expect(err.code).toBe('HOOKBOX_INVALID_INPUT');
      expect(err.field).toBe(F);
    },
  );

  it.each(['5', '250', '1.5', '00'])('rejects the bare number %j as ambiguous', (text) => {
    expect(usageError(() => parseDuration(text, F)).message).toMatch(/^--poll-interval: a bare number is ambiguous/);
  });

  it.each(['-5s', '-0', '-1ms'])('rejects the negative %j', (text) => {
    expect(usageError(() => parseDuration(text, F)).message).toMatch(/^--poll-interval: must not be negative/);
  });

  it.each(['30m1h', '1s1s', '5ms5s'])('rejects units out of order or repeated in %j', (text) => {
    expect(usageError(() => parseDuration(text, F)).message).toMatch(/largest to smallest/);
  });

  it('rejects anything over 365 days', () => {
    expect(parseDuration('8760h', F)).toBe(MAX_DURATION_MS);
    for (const text of ['366d', '365d1ms', '8761h', '99999999999999999999999d']) {
      expect(usageError(() => parseDuration(text, F)).message).toBe(
        `--poll-interval: must be at most 365d (got "${text}")`,
      );
    }
  });
});

describe('parseDurationList', () => {
  it('parses a comma-separated list, tolerating spaces', () => {
    expect(parseDurationList('5s,5m,30m', '--retry-schedule')).toEqual([5_000, 300_000, 1_800_000]);
    expect(parseDurationList(' 5s , 5m ,30m ', '--retry-schedule')).toEqual([5_000, 300_000, 1_800_000]);
    expect(parseDurationList('0', '--retry-schedule')).toEqual([0]);
  });

  it('rejects an empty list', () => {
    for (const text of ['', '  ']) {
      expect(usageError(() => parseDurationList(text, '--retry-schedule')).message).toMatch(
        /^--retry-schedule: must be a comma-separated list of durations/,
      );
    }
  });

  it.each([
    ['5s,,5m', 2],
    ['5s,', 2],
    [',5s', 1],
    ['5s, ,5m', 2],
  ])('rejects the empty item in %j', (text, item) => {
    expect(usageError(() => parseDurationList(text, '--retry-schedule')).message).toBe(
      `--retry-schedule: item ${item} is empty (got ${JSON.stringify(text)})`,
    );
  });

  it('names the position of a bad item', () => {
    expect(usageError(() => parseDurationList('5s,abc,5m', '--retry-schedule')).message).toBe(
      '--retry-schedule item 2: must be a duration like 250ms, 5s, 5m or 2h (got "abc")',
    );
    expect(usageError(() => parseDurationList('5s,5m,-1s', '--retry-schedule')).message).toMatch(
      /^--retry-schedule item 3: must not be negative/,
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0'],
    [1, '1ms'],
    [250, '250ms'],
    [1_000, '1s'],
    [1_500, '1s500ms'],
    [5_000, '5s'],
    [60_000, '1m'],
    [90_000, '1m30s'],
    [300_000, '5m'],
    [7_200_000, '2h'],
    [5_400_000, '1h30m'],
    [86_400_000, '1d'],
    [36 * 3_600_000, '1d12h'],
    [-5_000, '-5s'],
    [249.6, '250ms'],
  ])('formats %d ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('leaves non-finite values readable instead of looping', () => {
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('Infinity');
    expect(formatDuration(Number.NaN)).toBe('NaN');
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 999, 1_001, 59_999, 61_000, 3_599_999, 86_400_001, 93_784_005, MAX_DURATION_MS]) {
      expect(parseDuration(formatDuration(ms), F)).toBe(ms);
    }
  });
});
