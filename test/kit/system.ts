import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { hashPassword } from '../../lambdas/core/passwords.ts';
import type { AccessClaims } from '../../lambdas/core/tokens.ts';
import { createUser } from '../../lambdas/core/users.ts';
import { localConfig } from '../../local/config.ts';
import { type LocalSystem, type StartOptions, startLocal } from '../../local/system.ts';
import { TestClock } from './clock.ts';
import { untilRead } from './wait.ts';

export interface TestSystem extends LocalSystem {
  /** Every audit line written, parsed. */
  readonly audit: Record<string, unknown>[];
  /** Every audit line as written. */
  readonly auditText: string[];
  readonly clock: TestClock;
  /** JSON request against the HTTP API. */
  request(method: string, path: string, options?: RequestOptions): Promise<JsonResponse>;
}

export interface RequestOptions {
  body?: unknown;
  rawBody?: string;
  token?: string;
  headers?: Record<string, string>;
  /** Sends from this loopback address (127.0.0.2, ...), which the gateway sees as the source IP. */
  from?: string;
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

/** Gateway and sweeper options passed through to `startLocal` (the clock and audit sink are the test's own). */
export type TestSystemOptions = Pick<
  StartOptions,
  'idleTimeoutMs' | 'maxConnectionMs' | 'sweeperTimer' | 'managementFault' | 'fanout' | 'queue'
>;

/**
 * The real local system (`npm start`'s code) on ephemeral ports with an in-memory
 * store, unless `DATA_DIR` is given, and a hand-moved clock.
 */
export async function startTestSystem(
  env: Record<string, string> = {},
  clock = new TestClock(),
  options: TestSystemOptions = {},
): Promise<TestSystem> {
  // Tests register many users from one address; the registration throttle has its own tests.
  const config = localConfig({
    DATA_DIR: ':memory:',
    PORT: '0',
    WS_PORT: '0',
    REGISTER_MAX_PER_IP: '100000',
    ...env,
  });
  const auditText: string[] = [];
  const audit: Record<string, unknown>[] = [];
  const system = await startLocal(config, {
    ...options,
    clock,
    write: (line) => {
      auditText.push(line);
      audit.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  const request = async (
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<JsonResponse> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = options.from
      ? await requestFrom(options.from, `${system.httpUrl}${path}`, method, headers, body)
      : await fetch(`${system.httpUrl}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      parsed = {};
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
  return Object.assign(system, { audit, auditText, clock, request });
}

/**
 * The system as the WebSocket tests use it: the sweeper runs only when a test calls
 * `system.sweep()`, and the per-user frame limit (which has its own tests) stays out of the
 * way unless `env` sets `RATE_LIMIT_MAX`.
 */
export function startWsTestSystem(
  env: Record<string, string> = {},
  options: TestSystemOptions = {},
): Promise<TestSystem> {
  return startTestSystem({ RATE_LIMIT_MAX: '100000', ...env }, undefined, {
    sweeperTimer: false,
    ...options,
  });
}

/** Registers and logs in each user, one after another; their access tokens by username. */
export async function accessTokens(
  system: TestSystem,
  usernames: readonly string[],
): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const u of usernames) tokens[u] = (await registerAndLogin(system, u)).access_token;
  return tokens;
}

/**
 * Resolves once every socket that connected has had its `$disconnect` handled (one
 * `ws.disconnect` audit line per `ws.connect`), so that a test does not start while the
 * last one's disconnects and their `member_left` fan-out still hold the system busy.
 */
export async function untilDisconnectsHandled(system: TestSystem, timeoutMs = 30_000): Promise<void> {
  const count = (event: string) => system.audit.filter((line) => line.event === event).length;
  await untilRead(
    'every $disconnect handled',
    async () => ({ connects: count('ws.connect'), disconnects: count('ws.disconnect') }),
    (n) => n.disconnects >= n.connects,
    timeoutMs,
  );
}

/** One HTTP request sent from a chosen local address (fetch cannot pick one). */
function requestFrom(
  localAddress: string,
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, String(v));
        const status = res.statusCode ?? 0;
        const payload = status === 204 ? null : Buffer.concat(chunks);
        resolve(new Response(payload, { status, headers: out }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function tempDir(prefix = 'jr-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export const PASSWORD = 'correct horse battery staple';

/** Registers and logs in a user; returns the token pair. */
export async function registerAndLogin(
  system: TestSystem,
  username: string,
  password = PASSWORD,
): Promise<{ access_token: string; refresh_token: string; expires_in: number }> {
  const reg = await system.request('POST', '/auth/register', { body: { username, password } });
  if (reg.status !== 201) throw new Error(`register ${username}: ${reg.status} ${reg.text}`);
  const login = await system.request('POST', '/auth/login', { body: { username, password } });
  if (login.status !== 200) throw new Error(`login ${username}: ${login.status} ${login.text}`);
  return login.body as { access_token: string; refresh_token: string; expires_in: number };
}

/** Creates a user with `roles` (registration only ever gives `user`) and logs in; returns the access token. */
export async function loginWithRoles(system: TestSystem, username: string, roles: string[]): Promise<string> {
  await createUser(system.deps, { username, passwordHash: await hashPassword(PASSWORD), roles });
  const login = await system.request('POST', '/auth/login', { body: { username, password: PASSWORD } });
  if (login.status !== 200) throw new Error(`login ${username}: ${login.status} ${login.text}`);
  return login.body.access_token as string;
}

/** The claims of one of our access tokens, read without verifying (the test or bench made it). */
export function claimsOfToken(token: string): AccessClaims {
  const c = decodeJwt(token);
  return {
    sub: String(c.sub),
    username: String(c.username),
    roles: c.roles as string[],
    jti: String(c.jti),
    sid: String(c.sid),
    iat: Number(c.iat),
    exp: Number(c.exp),
  };
}

/** A port that was free a moment ago (for settings that must name the port before start-up). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
