import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { publishMessage } from '../../lambdas/core/publish.ts';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';
import { is, openClient, Refused, terminateAll } from '../kit/ws-client.ts';

/** Store failures as the SDK raises them once its own retries are spent. */
const FAILURES = {
  throttled: () =>
    Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    }),
  server_error: () =>
    Object.assign(new Error('Internal server error'), {
      name: 'InternalServerError',
      $metadata: { httpStatusCode: 500 },
    }),
  timeout: () => Object.assign(new Error('Request timed out'), { name: 'TimeoutError' }),
  stopped: () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
} as const;
type Failure = keyof typeof FAILURES;

let system: TestSystem;
/** The failure every store call now gets, and which calls (by command name) it hits; none by default. */
let failing:
  | { kind: Failure; only?: (command: string, input: Record<string, unknown>) => boolean }
  | undefined;

beforeAll(async () => {
  system = await startTestSystem({ RATE_LIMIT_MAX: '100000' }, undefined, { sweeperTimer: false });
  system.deps.db.middlewareStack.add(
    (next, context) => async (args) => {
      const f = failing;
      if (f && (!f.only || f.only(context.commandName ?? '', args.input as Record<string, unknown>)))
        throw FAILURES[f.kind]();
      return next(args);
    },
    { step: 'initialize', name: 'storeFaults' },
  );
});
afterEach(() => {
  failing = undefined;
  terminateAll();
});
afterAll(async () => {
  await system.close();
});

const KINDS = Object.keys(FAILURES) as Failure[];

describe('the store failing', () => {
  it.each(KINDS)('the authorizer refuses a valid token and never lets it in (%s)', async (kind) => {
    const { access_token } = await registerAndLogin(system, `authz_${kind}`);
    failing = { kind };
    const err = await openClient(system.wsUrl, { protocols: ['jwt', access_token] }).then(
      (c) => c,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Refused);
    expect((err as Refused).status).toBe(500);
    failing = undefined;
    const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
    expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it.each(KINDS)('login answers 503 internal, then works once the store is back (%s)', async (kind) => {
    await registerAndLogin(system, `login_${kind}`);
    failing = { kind };
    const res = await system.request('POST', '/auth/login', {
      body: { username: `login_${kind}`, password: 'correct horse battery staple' },
    });
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'internal', message: expect.any(String) });
    expect(res.text).not.toMatch(/ECONNREFUSED|Throttling|stack/i);
    failing = undefined;
    const again = await system.request('POST', '/auth/login', {
      body: { username: `login_${kind}`, password: 'correct horse battery staple' },
    });
    expect(again.status).toBe(200);
  });

  it('register fails whole: a user whose write failed can register afterwards', async () => {
    failing = { kind: 'server_error', only: (c) => c === 'PutItemCommand' };
    const res = await system.request('POST', '/auth/register', {
      body: { username: 'halfway', password: 'correct horse battery staple' },
    });
    expect(res.status).toBe(503);
    failing = undefined;
    await registerAndLogin(system, 'halfway');
  });

  it.each(KINDS)('a frame gets error internal and the socket stays open (%s)', async (kind) => {
    const { access_token } = await registerAndLogin(system, `frame_${kind}`);
    const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
    failing = { kind };
    expect(await client.request({ type: 'join', room: `f-${kind}` })).toMatchObject({
      type: 'error',
      code: 'internal',
    });
    failing = undefined;
    expect(await client.request({ type: 'join', room: `f-${kind}` })).toMatchObject({ type: 'joined' });
  });

  it('a join whose second write fails leaves no membership behind', async () => {
    const { access_token } = await registerAndLogin(system, 'half_join');
    const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
    failing = {
      kind: 'server_error',
      only: (c, input) => c === 'UpdateItemCommand' && String(input.UpdateExpression).startsWith('ADD rooms'),
    };
    expect(await client.request({ type: 'join', room: 'half' })).toMatchObject({
      type: 'error',
      code: 'internal',
    });
    failing = undefined;
    expect(await roomMembers(system.deps, 'half')).toEqual([]);
    expect(await client.request({ type: 'message', room: 'half', text: 'x' })).toMatchObject({
      type: 'error',
      code: 'forbidden',
    });
    await client.expectNone(is('closing'), 50);
  });
  it('a big room whose message store failed gives its idempotency key back: the resend is published, not a duplicate', async () => {
    const room = 'big-store-fails';
    const clients = await Promise.all(
      ['bigfail_a', 'bigfail_b'].map(async (name) => {
        const { access_token } = await registerAndLogin(system, name);
        const client = await openClient(system.wsUrl, { protocols: ['jwt', access_token] });
        expect(await client.request({ type: 'join', room })).toMatchObject({ type: 'joined' });
        return client;
      }),
    );
    // Two members over a direct maximum of one: the room's delivery is queued, after its store.
    const deps = { ...system.deps, fanout: { directMax: 1 } };
    const publication = { room, from: 'bigfail_a', content: { text: 'once' }, idempotencyKey: 'k-1' };
    failing = {
      kind: 'server_error',
      only: (c, input) =>
        c === 'PutItemCommand' && String((input.Item as { sk?: { S?: string } }).sk?.S).startsWith('m#'),
    };
    await expect(publishMessage(deps, publication)).rejects.toThrow();
    failing = undefined;
    const again = await publishMessage(deps, publication);
    expect(again).toMatchObject({ duplicate: false, queued: true });
    for (const client of clients)
      expect(await client.next(is('message', { room, text: 'once' }))).toMatchObject({ seq: again.seq });
    // The key is claimed again by the publication that went out.
    expect(await publishMessage(deps, publication)).toMatchObject({ duplicate: true, seq: again.seq });
  });
});
