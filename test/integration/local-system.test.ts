import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { allSocketRows } from '../../lambdas/core/socket-rows.ts';
import { localDynamoClient } from '../../local/dynamo.ts';
import { runTs, startProcess } from '../kit/processes.ts';
import { freePort, PASSWORD, registerAndLogin, startTestSystem, tempDir } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { openClient, refusalStatus } from '../kit/ws-client.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

describe('the local system', () => {
  it('keeps users and signing keys across a restart on the same data folder', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const first = await startTestSystem({ DATA_DIR: dir.path });
    const pair = await registerAndLogin(first, 'persistent');
    await first.close();

    const second = await startTestSystem({ DATA_DIR: dir.path });
    cleanups.push(() => second.close());
    // The old access token still verifies: the key pair came back from the data folder.
    expect((await second.request('GET', '/auth/me', { token: pair.access_token })).status).toBe(200);
    expect(
      (await second.request('POST', '/auth/refresh', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(200);
    const login = await second.request('POST', '/auth/login', {
      body: { username: 'persistent', password: PASSWORD },
    });
    expect(login.status).toBe(200);
  });

  it('refuses to open a data folder that a running system holds', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const first = await startTestSystem({ DATA_DIR: dir.path });
    cleanups.push(() => first.close());
    await expect(startTestSystem({ DATA_DIR: dir.path })).rejects.toThrow(/another local system/);
  });

  it('forgets everything with DATA_DIR=:memory:', async () => {
    const first = await startTestSystem({ DATA_DIR: ':memory:' });
    await registerAndLogin(first, 'ephemeral');
    await first.close();
    const second = await startTestSystem({ DATA_DIR: ':memory:' });
    cleanups.push(() => second.close());
    const res = await second.request('POST', '/auth/login', {
      body: { username: 'ephemeral', password: PASSWORD },
    });
    expect(res.status).toBe(401);
  });
});

/** A GET with a chosen Host header (fetch may not set one), as a page on another port would send. */
function getWithHost(url: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { host } }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += String(d);
      });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('origins that follow PORT', () => {
  it('lets the page on PORT open a socket when ALLOWED_ORIGINS is unset, and tells the page', async () => {
    const port = await freePort();
    const system = await startTestSystem({ PORT: String(port) });
    cleanups.push(() => system.close());
    const { access_token: token } = await registerAndLogin(system, 'porter');
    const page = `http://localhost:${port}`;
    const socket = await openClient(system.wsUrl, { origin: page, protocols: ['jwt', token] });
    socket.ws.close();
    expect(
      await refusalStatus(system.wsUrl, { origin: 'http://localhost:3000', protocols: ['jwt', token] }),
    ).toBe(403);
    // The demo page reads config.json from its own origin: the Host header names it.
    const config = await fetch(`${page}/config.json`).then((r) => r.json());
    expect(config).toMatchObject({ originAllowed: true });
    const elsewhere = await getWithHost(`${system.httpUrl}/config.json`, 'localhost:5173');
    expect(JSON.parse(elsewhere)).toMatchObject({ originAllowed: false });
  });
});

describe('npm start', () => {
  it('prints its URLs, serves, and on SIGTERM stops cleanly with nothing lost', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const env = { DATA_DIR: dir.path, PORT: '0', WS_PORT: '0' };
    const first = await startProcess(env);
    expect(
      (await post(`${first.httpUrl}/auth/register`, { username: 'durable', password: PASSWORD })).status,
    ).toBe(201);
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await startProcess(env);
    cleanups.push(async () => {
      await second.stop('SIGINT');
    });
    const login = await post(`${second.httpUrl}/auth/login`, { username: 'durable', password: PASSWORD });
    expect(login.status).toBe(200);
    // Audit lines go to stdout as JSON.
    expect(second.output()).toMatch(/"event":"auth.login"/);
  });

  it('prints one readable line per event with LOG_FORMAT=pretty (a terminal gets this by default)', async () => {
    const started = await startProcess({
      DATA_DIR: ':memory:',
      PORT: '0',
      WS_PORT: '0',
      LOG_FORMAT: 'pretty',
    });
    cleanups.push(async () => {
      await started.stop();
    });
    await post(`${started.httpUrl}/auth/register`, { username: 'reader', password: PASSWORD });
    await post(`${started.httpUrl}/auth/login`, { username: 'reader', password: 'wrong password here' });
    await until('the login failure line', () => /auth\.login_failed/.test(started.output()));
    expect(started.output()).toMatch(
      /^\d\d:\d\d:\d\d +auth\.register +reader {2}sub=\S+ {2}ip=127\.0\.0\.1$/m,
    );
    expect(started.output()).toMatch(/^\d\d:\d\d:\d\d +WARN +auth\.login_failed +reader {2}\S+/m);
    expect(started.output()).not.toContain('"event"');
  });

  it('stops at start-up on a bad setting, naming it', async () => {
    const out = await runTs('local/main.ts', [], {
      DATA_DIR: ':memory:',
      RATE_LIMIT_MAX: 'ten',
      ALLOWED_ORIGINS: 'https://x.example/path',
    });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('rateLimitMax (RATE_LIMIT_MAX)');
    expect(out.stderr).toContain('allowedOrigins (ALLOWED_ORIGINS)');
  });
});

describe('the embedded store', () => {
  it('answers only requests signed with the secret of this run, on loopback', async () => {
    const system = await startTestSystem();
    cleanups.push(() => system.close());
    expect(new URL(system.dynamoEndpoint).hostname).toBe('127.0.0.1');
    const listTables = {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'DynamoDB_20120810.ListTables',
    };
    const unsigned = await fetch(system.dynamoEndpoint, { method: 'POST', headers: listTables, body: '{}' });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.text()).toMatch(/MissingAuthenticationToken/);
    // A client with the well-known local credentials, as any process on the machine could make.
    const guessing = localDynamoClient(system.dynamoEndpoint);
    const error = await guessing.send(new ListTablesCommand({})).catch((e: unknown) => e);
    guessing.destroy();
    expect((error as Error).name).toMatch(/InvalidSignatureException|UnrecognizedClientException/);
    // The system's own client, signing with the run's secret, is served.
    const tables = await system.deps.db.send(new ListTablesCommand({}));
    expect(tables.TableNames?.length).toBeGreaterThan(0);
  });
});

describe('@connections of the running system', () => {
  it('refuses unsigned calls on the public WebSocket port: no forged frame, no close, no details', async () => {
    const system = await startTestSystem();
    cleanups.push(() => system.close());
    const { access_token } = await registerAndLogin(system, 'target');
    const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
    cleanups.push(async () => {
      await client.close();
    });
    const [row] = await allSocketRows(system.deps);
    const url = `${system.wsUrl.replace(/^ws/, 'http')}/local/@connections/${encodeURIComponent(row?.connectionId ?? '')}`;
    const forged = JSON.stringify({
      type: 'message',
      room: 'lobby',
      from: 'admin',
      text: 'your session expired, log in at evil.example',
    });
    for (const init of [{ method: 'POST', body: forged }, { method: 'GET' }, { method: 'DELETE' }]) {
      const res = await fetch(url, init);
      expect(res.status).toBe(403);
      expect(res.headers.get('x-amzn-errortype')).toBe('ForbiddenException');
    }
    await client.expectNone(() => true, 200);
    expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('npm start: start-up problems in one line', () => {
  const noStack = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);

  it('names the setting of a busy port', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    cleanups.push(async () => {
      busy.close();
    });
    const port = String((busy.address() as AddressInfo).port);
    const http = await runTs('local/main.ts', [], { DATA_DIR: ':memory:', PORT: port, WS_PORT: '0' });
    expect(http.code).toBe(2);
    expect(http.stderr).toContain(`could not start: PORT ${port} is in use`);
    expect(http.stderr).toContain(`PORT=${Number(port) + 100}`);
    noStack(http.stderr);
    const ws = await runTs('local/main.ts', [], { DATA_DIR: ':memory:', PORT: '0', WS_PORT: port });
    expect(ws.stderr).toContain(`could not start: WS_PORT ${port} is in use`);
  });

  it('names DATA_DIR when it cannot be a folder, in one line', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const file = join(dir.path, 'a-file');
    await writeFile(file, '');
    const out = await runTs('local/main.ts', [], { DATA_DIR: file, PORT: '0', WS_PORT: '0' });
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split('\n')).toEqual([
      `could not start: DATA_DIR ${file} is not a usable folder: a file is in the way (it, or a folder above it, is a file) (EEXIST). Set DATA_DIR to a folder this user can write, or DATA_DIR=:memory: to keep nothing.`,
    ]);
  });

  it('asks "did you mean" for a variable one typo away from a setting', async () => {
    const out = await runTs('local/main.ts', [], {
      DATA_DIR: ':memory:',
      RATE_LIMT_MAX: '50',
      RATE_LIMIT_MAX: 'x',
    });
    expect(out.stderr).toContain('warning: RATE_LIMT_MAX is not a setting; did you mean RATE_LIMIT_MAX?');
  });
});

describe('npm run users', () => {
  it('adds an admin and grants roles while npm start is running', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const running = await startProcess({ DATA_DIR: dir.path, PORT: '0', WS_PORT: '0' });
    cleanups.push(async () => {
      await running.stop();
    });
    const add = await runTs('local/users-cli.ts', ['add', 'Boss', '--role', 'admin'], {
      DATA_DIR: dir.path,
      USER_PASSWORD: PASSWORD,
    });
    expect(add.code).toBe(0);
    expect(add.stdout).toContain('added boss');
    const login = await post(`${running.httpUrl}/auth/login`, { username: 'boss', password: PASSWORD });
    expect(login.status).toBe(200);
    const me = await fetch(`${running.httpUrl}/auth/me`, {
      headers: { authorization: `Bearer ${login.body.access_token as string}` },
    });
    expect(((await me.json()) as { roles: string[] }).roles.sort()).toEqual(['admin', 'user']);

    const grant = await runTs('local/users-cli.ts', ['grant', 'boss', 'publisher'], { DATA_DIR: dir.path });
    expect(grant.code).toBe(0);
    const list = await runTs('local/users-cli.ts', ['list'], { DATA_DIR: dir.path });
    expect(list.stdout).toMatch(/^boss\tadmin,publisher,user\t/m);
  });

  it('works on the data folder alone, reading the password from stdin, and refuses bad input', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const add = await runTs('local/users-cli.ts', ['add', 'solo'], { DATA_DIR: dir.path }, `${PASSWORD}\n`);
    expect(add.code).toBe(0);
    const dup = await runTs('local/users-cli.ts', ['add', 'solo'], {
      DATA_DIR: dir.path,
      USER_PASSWORD: PASSWORD,
    });
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('taken');
    const short = await runTs('local/users-cli.ts', ['add', 'other'], {
      DATA_DIR: dir.path,
      USER_PASSWORD: 'short',
    });
    expect(short.code).toBe(2);
    const unknown = await runTs('local/users-cli.ts', ['grant', 'ghost', 'admin'], { DATA_DIR: dir.path });
    expect(unknown.code).toBe(2);
    const usage = await runTs('local/users-cli.ts', ['frobnicate'], { DATA_DIR: dir.path });
    expect(usage.stderr).toContain('Usage:');

    const system = await startTestSystem({ DATA_DIR: dir.path });
    cleanups.push(() => system.close());
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'solo', password: PASSWORD } }))
        .status,
    ).toBe(200);
  });
});
