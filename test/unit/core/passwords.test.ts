import { performance } from 'node:perf_hooks';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../lambdas/core/errors.ts';
import {
  hashPassword,
  validatePassword,
  verifyPassword,
  warmUpPasswordCheck,
} from '../../../lambdas/core/passwords.ts';

const PASSWORD = 'correct horse battery staple';
let stored: string;

beforeAll(async () => {
  stored = await hashPassword(PASSWORD);
});

function phc(hash: string) {
  const m =
    /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(hash);
  if (!m) throw new Error(`not a PHC argon2 string: ${hash}`);
  return {
    algorithm: m[1],
    version: Number(m[2]),
    m: Number(m[3]),
    t: Number(m[4]),
    p: Number(m[5]),
    saltBytes: Buffer.from(m[6] ?? '', 'base64').length,
    hashBytes: Buffer.from(m[7] ?? '', 'base64').length,
  };
}

describe('hashPassword', () => {
  it('stores argon2id v1.3 with m=19456, t=2, p=1', () => {
    expect(phc(stored)).toMatchObject({ algorithm: 'argon2id', version: 19, m: 19_456, t: 2, p: 1 });
  });

  it('salts every hash with at least 16 random bytes', async () => {
    const again = await hashPassword(PASSWORD);
    expect(again).not.toBe(stored);
    expect(phc(stored).saltBytes).toBeGreaterThanOrEqual(16);
    expect(phc(stored).hashBytes).toBeGreaterThanOrEqual(32);
  });

  it('never contains the password', () => {
    expect(stored).not.toContain(PASSWORD);
  });
});

describe('verifyPassword', () => {
  it('accepts the right password', async () => {
    expect(await verifyPassword(stored, PASSWORD)).toBe(true);
  });

  for (const [label, attempt] of [
    ['a wrong password', 'incorrect horse battery staple'],
    ['the password with different case', PASSWORD.toUpperCase()],
    ['a prefix of the password', PASSWORD.slice(0, -1)],
    ['the password plus one character', `${PASSWORD}!`],
    ['the password with a trailing NUL', `${PASSWORD}\u0000`],
    ['an empty password', ''],
  ] as const) {
    it(`refuses ${label}`, async () => {
      expect(await verifyPassword(stored, attempt)).toBe(false);
    });
  }

  it('refuses, without throwing, when the stored hash is malformed', async () => {
    for (const bad of ['', 'not a hash', '$argon2id$v=19$m=19456,t=2,p=1$$', stored.slice(0, -10)]) {
      expect(await verifyPassword(bad, PASSWORD), JSON.stringify(bad)).toBe(false);
    }
  });

  it('refuses an unknown user (no stored hash)', async () => {
    expect(await verifyPassword(undefined, PASSWORD)).toBe(false);
    expect(await verifyPassword(undefined, 'dummy password that never matches')).toBe(false);
  });

  it('takes comparable time for an unknown user and a wrong password', async () => {
    warmUpPasswordCheck();
    await verifyPassword(undefined, 'warm up the unknown-user path');
    await verifyPassword(stored, 'warm up the wrong-password path');
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      await verifyPassword(undefined, `wrong password ${i}`);
      unknown.push(performance.now() - t);
      t = performance.now();
      await verifyPassword(stored, `wrong password ${i}`);
      wrong.push(performance.now() - t);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const ratio = median(unknown) / median(wrong);
    expect(ratio, `unknown ${unknown.map(Math.round)} ms, wrong ${wrong.map(Math.round)} ms`).toBeGreaterThan(
      0.5,
    );
    expect(ratio).toBeLessThan(2);
  });

  it('matches a password typed in decomposed Unicode against one registered composed', async () => {
    const composed = 'café crème brûlée';
    const decomposed = composed.normalize('NFD');
    expect(decomposed).not.toBe(composed);
    const hash = await hashPassword(validatePassword(composed));
    expect(await verifyPassword(hash, validatePassword(decomposed))).toBe(true);
  });
});

describe('validatePassword', () => {
  function outcome(password: unknown): string {
    try {
      validatePassword(password);
      return 'accepted';
    } catch (err) {
      if (err instanceof AppError) return err.code;
      throw err;
    }
  }

  for (const [label, password] of [
    ['12 ASCII characters', 'a'.repeat(12)],
    ['12 emoji (24 UTF-16 units)', '😀'.repeat(12)],
    ['256 ASCII characters', 'a'.repeat(256)],
    ['256 emoji (512 UTF-16 units)', '🔑'.repeat(256)],
    ['12 CJK characters', '密码密码密码密码密码密码'],
  ] as const) {
    it(`accepts ${label}`, () => {
      expect(outcome(password)).toBe('accepted');
    });
  }

  it('counts characters as stored (after NFC), so 6 accented letters typed decomposed are too short', () => {
    const typed = 'éèêëàâ'.normalize('NFD');
    expect([...typed]).toHaveLength(12);
    expect([...typed.normalize('NFC')]).toHaveLength(6);
    expect(outcome(typed)).toBe('invalid_request');
  });

  for (const [label, password] of [
    ['11 ASCII characters', 'a'.repeat(11)],
    ['11 emoji (22 UTF-16 units, more than 12)', '😀'.repeat(11)],
    ['257 ASCII characters', 'a'.repeat(257)],
    ['257 emoji', '🔑'.repeat(257)],
    ['an empty string', ''],
    ['a number', 123456789012],
    ['undefined', undefined],
    ['null', null],
    ['an array of characters', [...'a'.repeat(12)]],
    ['an object', { password: 'a'.repeat(12) }],
  ] as const) {
    it(`refuses ${label} with invalid_request`, () => {
      expect(outcome(password)).toBe('invalid_request');
    });
  }
});
