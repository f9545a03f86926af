import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { runTs } from '../kit/processes.ts';
import { PASSWORD, registerAndLogin, startTestSystem, tempDir } from '../kit/system.ts';
import { openClient } from '../kit/ws-client.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const users = (args: string[], env: Record<string, string>) => runTs('local/users-cli.ts', args, env);

async function dataDir(): Promise<string> {
  const dir = await tempDir();
  cleanups.push(dir.remove);
  return dir.path;
}

describe('npm run users -- block | unblock | revoke | blocks', () => {
  it('blocks a user of the running system, closing their socket, lists the block, and unblocks', async () => {
    const dir = await dataDir();
    const system = await startTestSystem({ DATA_DIR: dir });
    cleanups.push(() => system.close());
    const { access_token: token } = await registerAndLogin(system, 'mallory');
    const socket = await openClient(system.wsUrl, { protocols: ['jwt', token] });

    const block = await users(['block', 'Mallory', '--for', '2h', '--reason', 'spam'], { DATA_DIR: dir });
    expect(block.code).toBe(0);
    expect(block.stdout).toMatch(/^blocked mallory until \S+; sockets closed$/m);
    expect(await socket.next((f) => f.type === 'closing')).toEqual({ type: 'closing', reason: 'blocked' });
    await socket.closed;
    const login = await system.request('POST', '/auth/login', {
      body: { username: 'mallory', password: PASSWORD },
    });
    expect(login.status).toBe(403);

    const blocks = await users(['blocks'], { DATA_DIR: dir });
    expect(blocks.stdout).toMatch(/^user\tmallory\tuntil \S+\tby cli:\S+\tspam$/m);
    const until = Date.parse(/until (\S+)/.exec(blocks.stdout)?.[1] ?? '');
    expect(Math.abs(until - (Date.now() + 2 * 3600_000))).toBeLessThan(60_000);

    expect((await users(['unblock', 'mallory'], { DATA_DIR: dir })).code).toBe(0);
    expect((await users(['blocks'], { DATA_DIR: dir })).stdout).toContain('no blocks in force');
    const again = await system.request('POST', '/auth/login', {
      body: { username: 'mallory', password: PASSWORD },
    });
    expect(again.status).toBe(200);
  });

  it('revokes every token of a user issued so far; a new login works', async () => {
    const dir = await dataDir();
    const system = await startTestSystem({ DATA_DIR: dir });
    cleanups.push(() => system.close());
    const pair = await registerAndLogin(system, 'leaky');
    const socket = await openClient(system.wsUrl, { protocols: ['jwt', pair.access_token] });

    const revoke = await users(['revoke', 'leaky'], { DATA_DIR: dir });
    expect(revoke.code).toBe(0);
    expect(await socket.next((f) => f.type === 'closing')).toEqual({
      type: 'closing',
      reason: 'token_revoked',
    });
    expect((await system.request('GET', '/auth/me', { token: pair.access_token })).status).toBe(401);
    const refresh = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: pair.refresh_token },
    });
    expect(refresh.status).toBe(401);
    // Tokens issued after the revocation (the system's clock moved past the CLI's now) work.
    system.clock.advance(30);
    const fresh = await system.request('POST', '/auth/login', {
      body: { username: 'leaky', password: PASSWORD },
    });
    expect(fresh.status).toBe(200);
    const me = await system.request('GET', '/auth/me', { token: String(fresh.body.access_token) });
    expect(me.status).toBe(200);
  });

  it('works on the data folder alone and refuses bad input with exit code 2', async () => {
    const dir = await dataDir();
    const stopped = await startTestSystem({ DATA_DIR: dir });
    await registerAndLogin(stopped, 'solo');
    await stopped.close();
    const block = await users(['block', 'solo', '--for', '90s'], { DATA_DIR: dir });
    expect(block.code).toBe(0);
    expect(block.stdout).toContain('no socket is open');
    expect((await users(['blocks'], { DATA_DIR: dir })).stdout).toMatch(/^user\tsolo\t/m);

    const ghost = await users(['block', 'ghost'], { DATA_DIR: dir });
    expect(ghost.code).toBe(2);
    expect(ghost.stderr).toContain('no such user');
    const badDuration = await users(['block', 'solo', '--for', 'soon'], { DATA_DIR: dir });
    expect(badDuration.code).toBe(2);
    expect(badDuration.stderr).toContain('--for takes a duration');
  });
});

describe('npm run users -- rotate-keys', () => {
  it('signs with a new key from the next start, while tokens of the old key still verify', async () => {
    const dir = await dataDir();
    const first = await startTestSystem({ DATA_DIR: dir });
    const old = await registerAndLogin(first, 'keeper');
    await first.close();

    const rotate = await users(['rotate-keys'], { DATA_DIR: dir });
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toMatch(/signing key is now \S+; the key set holds 3 keys/);

    const second = await startTestSystem({ DATA_DIR: dir });
    cleanups.push(() => second.close());
    expect((await second.request('GET', '/auth/me', { token: old.access_token })).status).toBe(200);
    const login = await second.request('POST', '/auth/login', {
      body: { username: 'keeper', password: PASSWORD },
    });
    const newKid = decodeProtectedHeader(String(login.body.access_token)).kid;
    expect(newKid).not.toBe(decodeProtectedHeader(old.access_token).kid);
    expect(rotate.stdout).toContain(`signing key is now ${newKid}`);
    const jwks = await second.request('GET', '/.well-known/jwks.json');
    expect((jwks.body.keys as unknown[]).length).toBe(3);
  });

  it('refuses --aws, where a deploy rotates the keys', async () => {
    const out = await users(['rotate-keys', '--aws'], { DATA_DIR: await dataDir() });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('keyRotation');
  });
});

describe('npm run users -- --aws', () => {
  /** A shell with no AWS account: no credentials anywhere, no metadata service. */
  async function noAwsEnv(extra: Record<string, string>): Promise<Record<string, string>> {
    const home = await mkdtemp(join(tmpdir(), 'jr-home-'));
    cleanups.push(async () => {
      const { rm } = await import('node:fs/promises');
      await rm(home, { recursive: true, force: true });
    });
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (v !== undefined && !k.startsWith('AWS_')) env[k] = v;
    return { ...env, HOME: home, AWS_EC2_METADATA_DISABLED: 'true', ...extra };
  }

  it('says that credentials are missing instead of "the store is unavailable"', async () => {
    const env = await noAwsEnv({ AWS_REGION: 'eu-west-1', USERS_TABLE: 'Users', BLOCKLIST_TABLE: 'Blocks' });
    const out = await runTs('local/users-cli.ts', ['block', 'mallory', '--aws'], env);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('--aws found no AWS credentials');
    expect(out.stderr).not.toContain('store is unavailable');
  });

  it('names a missing region and a missing table variable', async () => {
    const noRegion = await runTs(
      'local/users-cli.ts',
      ['list', '--aws'],
      await noAwsEnv({ USERS_TABLE: 'Users' }),
    );
    expect(noRegion.stderr).toContain('--aws needs a region');
    const noTable = await runTs(
      'local/users-cli.ts',
      ['blocks', '--aws'],
      await noAwsEnv({ AWS_REGION: 'eu-west-1' }),
    );
    expect(noTable.stderr).toContain('BLOCKLIST_TABLE');
  });
});
