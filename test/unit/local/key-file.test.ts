import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicOnly } from '../../../lambdas/core/keys.ts';
import { issueAccessToken, verifyAccessToken } from '../../../lambdas/core/tokens.ts';
import { fileKeySource } from '../../../local/key-file.ts';
import { TestClock } from '../../kit/clock.ts';
import { outcomeOf } from '../../kit/forge.ts';

const NOW = new Date(Date.UTC(2030, 0, 1));
const SETTINGS = {
  tokenIssuer: 'urn:test:issuer',
  tokenAudience: 'urn:test:clients',
  accessTokenTtlS: 900,
  clockSkewS: 30,
};
const SUBJECT = { sub: 'user-1', username: 'alice', roles: ['user'], sid: 'family-1' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'unit-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fileKeySource', () => {
  it('keeps the same key across a restart, so issued tokens stay valid', async () => {
    const path = join(dir, 'restart', 'nested', 'keys.json');
    const first = fileKeySource(path);
    const clock = new TestClock(NOW.getTime());
    const { token } = await issueAccessToken({ settings: SETTINGS, keys: first, clock }, SUBJECT);
    const kidBefore = (await first.signingKey()).kid;

    const afterRestart = fileKeySource(path);

    expect((await afterRestart.signingKey()).kid).toBe(kidBefore);
    expect(await afterRestart.publicKeys()).toEqual(await first.publicKeys());
    const claims = await verifyAccessToken(
      { settings: SETTINGS, keys: publicOnly(afterRestart), clock },
      token,
    );
    expect(claims.sub).toBe('user-1');
  });

  it('writes the key file readable by its owner only (mode 0600)', async () => {
    const path = join(dir, 'mode', 'keys.json');
    const previous = process.umask(0);
    try {
      await fileKeySource(path).publicKeys();
    } finally {
      process.umask(previous);
    }
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('does not replace a damaged key file (that would silently invalidate every token)', async () => {
    const path = join(dir, 'damaged.json');
    await writeFile(path, '{"keys": [', { mode: 0o600 });

    expect(await outcomeOf(fileKeySource(path).signingKey())).toBe('unavailable');
    expect(await readFile(path, 'utf8')).toBe('{"keys": [');
  });

  it('keeps a fresh key in memory only when there is no path', async () => {
    const a = fileKeySource(undefined);
    const b = fileKeySource(undefined);
    expect((await a.signingKey()).kid).not.toBe((await b.signingKey()).kid);
  });
});
