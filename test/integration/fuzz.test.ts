import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../lambdas/core/errors.ts';
import { recentMessages } from '../../lambdas/core/history.ts';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { parseSettings, SETTING_NAMES, SettingsError } from '../../lambdas/core/settings.ts';
import { verifyAccessToken } from '../../lambdas/core/tokens.ts';
import {
  loginWithRoles,
  PASSWORD,
  registerAndLogin,
  startWsTestSystem,
  type TestSystem,
} from '../kit/system.ts';
import { type Client, openClient, terminateAll } from '../kit/ws-client.ts';

/** Hostile input is never a crash, never a 500, never another user's data, always a documented code. */
let system: TestSystem;
let fuzzer: { access_token: string; refresh_token: string };
let admin: string;
let victim: Client;
const VICTIM_ROOM = 'victim-room-not-generated';

const FRAME_CODES = new Set(['bad_request', 'too_large', 'forbidden', 'invalid_token', 'rate_limited']);
const HTTP_CODES = new Set([
  'invalid_request',
  'invalid_credentials',
  'invalid_token',
  'token_expired',
  'forbidden',
  'conflict',
  'rate_limited',
  'not_found',
]);

beforeAll(async () => {
  system = await startWsTestSystem();
  fuzzer = await registerAndLogin(system, 'fuzzer');
  const victimPair = await registerAndLogin(system, 'victim');
  admin = await loginWithRoles(system, 'fuzzadmin', ['admin']);
  victim = await openClient(system.wsUrl, { protocols: ['jwt', victimPair.access_token] });
  await victim.request({ type: 'join', room: VICTIM_ROOM });
  await victim.request({ type: 'message', room: VICTIM_ROOM, text: 'mine' });
});
afterAll(async () => {
  terminateAll();
  await system.close();
});

/** What the victim has: its room's members and history, and a working socket. */
async function victimState() {
  const members = (await roomMembers(system.deps, VICTIM_ROOM)).map((m) => m.username);
  const history = (await recentMessages(system.deps, VICTIM_ROOM, 50, Math.floor(Date.now() / 1000))).map(
    (m) => m.text,
  );
  return { members, history };
}

const TYPES = [
  'join',
  'leave',
  'presence',
  'message',
  'refresh_token',
  'whoami',
  'ping',
  'encrypted',
  'nope',
];
const roomish = fc.oneof(
  fc.string({ maxLength: 70 }),
  fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
  fc.constantFrom('', ' ', 'a:b', 'user:victim', 'dm:a+b', '../x', 'x'.repeat(65), 'é', '\u0000'),
);
const frameish = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.json({ maxDepth: 3 }),
  fc
    .record(
      {
        type: fc.oneof(fc.constantFrom(...TYPES), fc.anything()),
        room: fc.oneof(roomish, fc.anything()),
        text: fc.oneof(fc.string({ maxLength: 200 }), fc.anything()),
        history: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.anything()),
        token: fc.oneof(fc.string({ maxLength: 100 }), fc.anything()),
        jwe: fc.oneof(fc.string({ maxLength: 100 }), fc.anything()),
        id: fc.oneof(fc.string({ maxLength: 80 }), fc.integer(), fc.anything()),
      },
      { requiredKeys: ['type'] },
    )
    .map((o) => JSON.stringify(o)),
  fc.constant('x'.repeat(9000)),
);

describe('fuzzed frames through the dispatcher', () => {
  it('answers every frame with a reply or a documented error code, and the socket stays open', async () => {
    const client = await openClient(system.wsUrl, { protocols: ['jwt', fuzzer.access_token] });
    const before = await victimState();
    await fc.assert(
      fc.asyncProperty(frameish, async (body) => {
        const id = `fz${Math.random().toString(36).slice(2)}`;
        // Wrapped so that the reply can be matched; the body itself goes as the inner text where it is not JSON.
        let frame: string;
        try {
          const parsed = JSON.parse(body) as unknown;
          frame =
            typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
              ? JSON.stringify({ ...parsed, id })
              : body;
        } catch {
          frame = body;
        }
        client.send(frame);
        if (!frame.includes(id)) {
          // No id to match: a ping after it must still be answered.
          expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
          return;
        }
        const reply = await client.next((f) => f.id === id || typeof f.message === 'string', 5000);
        expect(reply.message === 'Internal server error').toBe(false);
        if (reply.type === 'error')
          expect(FRAME_CODES.has(String(reply.code)), JSON.stringify(reply)).toBe(true);
      }),
      { numRuns: 150 },
    );
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    expect(await victimState()).toEqual(before);
    expect(await victim.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(system.audit.filter((l) => l.level === 'error')).toEqual([]);
  }, 60_000);
});

const bodyish = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
  fc
    .record(
      {
        username: fc.oneof(fc.string({ maxLength: 40 }), fc.anything()),
        password: fc.oneof(fc.string({ maxLength: 40 }), fc.anything()),
        refresh_token: fc.oneof(fc.string({ maxLength: 80 }), fc.anything()),
        id_token: fc.oneof(fc.string({ maxLength: 80 }), fc.anything()),
        duration_s: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.anything()),
        reason: fc.oneof(fc.string({ maxLength: 300 }), fc.anything()),
        text: fc.oneof(fc.string({ maxLength: 100 }), fc.anything()),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
);

describe('fuzzed HTTP bodies', () => {
  const routes: { method: string; path: string; token?: () => string; runs: number }[] = [
    // Register and login hash passwords: fewer runs, still every shape.
    { method: 'POST', path: '/auth/register', runs: 40 },
    { method: 'POST', path: '/auth/login', runs: 40 },
    { method: 'POST', path: '/auth/refresh', runs: 60 },
    { method: 'POST', path: '/auth/token-exchange', runs: 40 },
    { method: 'POST', path: '/auth/ws-ticket', token: () => fuzzer.access_token, runs: 40 },
    { method: 'POST', path: '/admin/users/nobody-here/block', token: () => admin, runs: 60 },
    { method: 'POST', path: '/admin/ips/10.9.9.9/block', token: () => admin, runs: 60 },
    { method: 'POST', path: '/admin/rooms/fuzz-http/messages', token: () => admin, runs: 60 },
  ];
  for (const route of routes) {
    it(`${route.method} ${route.path}: never a 500, always a documented error code`, async () => {
      const before = await victimState();
      await fc.assert(
        fc.asyncProperty(bodyish, fc.boolean(), async (body, asJson) => {
          const res = await system.request(route.method, route.path, {
            rawBody: body,
            headers: { 'content-type': asJson ? 'application/json' : 'text/plain' },
            ...(route.token ? { token: route.token() } : {}),
          });
          expect(res.status, res.text).toBeLessThan(500);
          if (res.status >= 400) expect(HTTP_CODES.has(String(res.body.error)), res.text).toBe(true);
        }),
        { numRuns: route.runs },
      );
      expect(await victimState()).toEqual(before);
      const login = await system.request('POST', '/auth/login', {
        body: { username: 'victim', password: PASSWORD },
      });
      expect(login.status).toBe(200);
    }, 60_000);
  }
});

describe('fuzzed token strings', () => {
  it('refuses any string, and any one-character change of a valid token, as invalid_token or token_expired', async () => {
    const valid = fuzzer.access_token;
    const mutated = fc
      .tuple(fc.nat({ max: valid.length - 1 }), fc.string({ minLength: 1, maxLength: 1 }))
      .map(([i, ch]) => valid.slice(0, i) + ch + valid.slice(i + 1))
      .filter((t) => t !== valid);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 5000 }), mutated), async (token) => {
        const err = await verifyAccessToken(system.deps, token).then(
          () => undefined,
          (e: unknown) => e,
        );
        // A changed character in the signature's last base64url digit can decode to the same bytes.
        if (err === undefined) return;
        expect(err).toBeInstanceOf(AppError);
        expect(['invalid_token', 'token_expired']).toContain((err as AppError).code);
      }),
      { numRuns: 400 },
    );
  });
});

describe('the fuzzed settings parser', () => {
  it('returns settings or throws SettingsError naming the problems, for any values', () => {
    const values = fc.dictionary(
      fc.constantFrom(...SETTING_NAMES),
      fc.oneof(fc.string({ maxLength: 50 }), fc.constantFrom('0', '-1', '1e9', 'true', 'NaN', ' 10 ', '')),
    );
    fc.assert(
      fc.property(values, fc.constantFrom('local' as const, 'aws' as const), (env, profile) => {
        try {
          const settings = parseSettings((name) => env[name], profile);
          expect(Object.isFrozen(settings)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(SettingsError);
          expect((err as SettingsError).problems.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });
});
