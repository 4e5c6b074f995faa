/**
 * The relay's one settings table: defaults, environment names, flags and help all come from
 * RELAY_SETTINGS; the isolation settings resolve flag > env > default and are validated.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerRelay } from './commands/relay.js';
import { RELAY_DEFAULTS, RELAY_ENV, RELAY_SETTINGS, type RelayFlags, resolveRelayConfig } from './config.js';

const DB = { DATABASE_URL: 'postgres://localhost/x' };
const resolve = (flags: RelayFlags = {}, env: Record<string, string> = {}) =>
  resolveRelayConfig(flags, { ...DB, ...env }, 'test').options;

describe('RELAY_SETTINGS', () => {
  it('generates the defaults, the environment names and every `hookbox relay` option', () => {
    expect(RELAY_DEFAULTS).toMatchObject({ concurrency: 64, connectionsPerOrigin: 32, slowAfter: '1s', lease: '60s' });
    expect(RELAY_ENV.slowConcurrency).toBe('HOOKBOX_SLOW_CONCURRENCY');
    expect(Object.keys(RELAY_ENV)).toEqual(Object.keys(RELAY_SETTINGS));
    const program = new Command();
    registerRelay(program);
    const relay = program.commands.find((c) => c.name() === 'relay');
    const flags = relay?.options.map((o) => o.long) ?? [];
    expect(flags).toEqual(Object.values(RELAY_SETTINGS).map((s) => s.flags.split(' ')[0]));
    const help = relay?.helpInformation() ?? '';
    expect(help).toContain('(default 1s) [env: HOOKBOX_SLOW_AFTER]');
  });

  it('resolves the isolation settings: flag > env > default, slow budget defaulting to concurrency / 8', () => {
    expect(resolve()).toMatchObject({ slowAfterMs: 1_000, slowConcurrency: 8 });
    expect(resolve({ concurrency: '4' }).slowConcurrency).toBe(1);
    expect(resolve({}, { HOOKBOX_SLOW_AFTER: '3s', HOOKBOX_SLOW_CONCURRENCY: '5' })).toMatchObject({
      slowAfterMs: 3_000,
      slowConcurrency: 5,
    });
    expect(resolve({ slowAfter: '250ms' }, { HOOKBOX_SLOW_AFTER: '3s' }).slowAfterMs).toBe(250);
  });

  it('resolves the breaker and auto-disable settings: 5 failures, 30s doubling to 5m, disable after 5d or off', () => {
    expect(resolve().breaker).toEqual({
      failAfter: 5,
      cooldownMs: 30_000,
      maxCooldownMs: 300_000,
      disableAfterMs: 5 * 86_400_000,
    });
    expect(
      resolve({ breakerThreshold: '3', disableAfter: 'off' }, { HOOKBOX_BREAKER_COOLDOWN: '10s' }).breaker,
    ).toEqual({
      failAfter: 3,
      cooldownMs: 10_000,
      maxCooldownMs: 300_000,
      disableAfterMs: null,
    });
    expect(() => resolve({ breakerCooldown: '10m' })).toThrow(
      /--breaker-max-cooldown: must be from --breaker-cooldown/,
    );
    expect(() => resolve({ disableAfter: '10ms' })).toThrow(/--disable-after: must be at least 1s/);
  });

  it('refuses bad isolation settings, naming the flag and the rule', () => {
    expect(() => resolve({ slowConcurrency: '0' })).toThrow(/--slow-concurrency: must be a whole number from 1/);
    expect(() => resolve({ slowAfter: '0ms' })).toThrow(/--slow-after: must be at least 1ms/);
    expect(() => resolve({ slowAfter: 'soon' })).toThrow(/--slow-after/);
  });
});
