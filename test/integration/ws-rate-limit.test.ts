import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blockId, putBlock } from '../../lambdas/core/access.ts';
import { registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, type Frame, is, openClient, refusalStatus, terminateAll } from '../kit/ws-client.ts';

const MAX = 5;
const WINDOW_S = 60;
const BLOCK_AFTER = 2;
const BLOCK_S = 120;

let system: TestSystem;
let token: string;
let otherToken: string;

// The clock moves and counters are per user and window: a system per test.
beforeEach(async () => {
  system = await startTestSystem(
    {
      RATE_LIMIT_MAX: String(MAX),
      RATE_LIMIT_WINDOW_S: String(WINDOW_S),
      BLOCK_AFTER_VIOLATIONS: String(BLOCK_AFTER),
      BLOCK_DURATION_S: String(BLOCK_S),
    },
    undefined,
    { sweeperTimer: false },
  );
  token = (await registerAndLogin(system, 'rex')).access_token;
  otherToken = (await registerAndLogin(system, 'una')).access_token;
});
afterEach(async () => {
  terminateAll();
  await system.close();
});

const connect = (t = token): Promise<Client> => openClient(system.wsUrl, { protocols: ['jwt', t] });

async function pings(client: Client, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
}

function expectRateLimited(frame: Frame): void {
  expect(frame).toMatchObject({ type: 'error', code: 'rate_limited' });
  expect(Number.isInteger(frame.retry_after)).toBe(true);
  expect(frame.retry_after).toBeGreaterThanOrEqual(1);
  expect(frame.retry_after).toBeLessThanOrEqual(WINDOW_S);
}

describe('per-user rate limit', () => {
  it('counts every frame, valid or not, and refuses the sixth with rate_limited and retry_after; the socket stays', async () => {
    const rex = await connect();
    rex.send('not json');
    expect(await rex.next(is('error'))).toMatchObject({ code: 'bad_request' });
    expect(await rex.request({ type: 'no-such-type' })).toMatchObject({ code: 'bad_request' });
    expect(await rex.request({ type: 'join', room: 'bad room' })).toMatchObject({ code: 'bad_request' });
    expect(await rex.request({ type: 'message', room: 'nowhere', text: 'x' })).toMatchObject({
      code: 'forbidden',
    });
    await pings(rex, 1);
    const sixth = await rex.request({ type: 'ping' });
    expectRateLimited(sixth);
    expect(typeof sixth.id).toBe('string');
    // Invalid frames over the limit are refused the same way, and the socket stays open.
    rex.send('still not json');
    expectRateLimited(await rex.next(is('error')));
    expect(rex.ws.readyState).toBe(rex.ws.OPEN);
    expect(system.audit).toContainEqual(
      expect.objectContaining({ event: 'ws.rate_limited', username: 'rex' }),
    );
  });

  it('shares the limit across all sockets of the user, not across users', async () => {
    const a = await connect();
    const b = await connect();
    await pings(a, 3);
    await pings(b, 2);
    expectRateLimited(await b.request({ type: 'ping' }));
    expectRateLimited(await a.request({ type: 'whoami' }));
    const una = await connect(otherToken);
    await pings(una, MAX);
  });

  it('lets frames through again in the next window', async () => {
    const rex = await connect();
    await pings(rex, MAX);
    const limited = await rex.request({ type: 'ping' });
    expectRateLimited(limited);
    system.clock.advance(Number(limited.retry_after));
    await pings(rex, MAX);
    expectRateLimited(await rex.request({ type: 'ping' }));
    system.clock.advance(WINDOW_S);
    await pings(rex, 1);
  });
});

describe('blocking', () => {
  it(`blocks a user over the limit more than ${BLOCK_AFTER} times: closing blocked on every socket, then 403 until the block ends`, async () => {
    const a = await connect();
    const b = await connect();
    const una = await connect(otherToken);
    await pings(a, MAX);
    expectRateLimited(await a.request({ type: 'ping' })); // violation 1
    expectRateLimited(await b.request({ type: 'ping' })); // violation 2
    a.send({ type: 'ping', id: 'last-straw' }); // violation 3: over blockAfterViolations
    for (const s of [a, b]) {
      await s.next(is('closing', { reason: 'blocked' }));
      await s.closed;
      expect(s.received.at(-1)).toEqual({ type: 'closing', reason: 'blocked' });
    }
    expect(a.count((f) => f.id === 'last-straw')).toBe(0);
    expect(system.audit).toContainEqual(
      expect.objectContaining({ event: 'user.blocked', username: 'rex', reason: 'rate_limit_violations' }),
    );
    // The audit line follows DeleteConnection, so it may land just after the client saw the close.
    const closedByServer = () =>
      system.audit.filter((l) => l.event === 'ws.closed_by_server' && l.reason === 'blocked').length;
    await until('two ws.closed_by_server lines', () => closedByServer() >= 2);
    expect(closedByServer()).toBe(2);

    const before = system.audit.length;
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    expect(system.audit.slice(before)).toContainEqual(
      expect.objectContaining({ event: 'ws.denied', reason: 'blocked_user' }),
    );
    // Another user is not touched.
    expect(await una.request({ type: 'ping' })).toMatchObject({ type: 'pong' });

    system.clock.advance(BLOCK_S - 1);
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    system.clock.advance(2);
    const back = await connect();
    await pings(back, 1);
  });

  it(`does not block at exactly ${BLOCK_AFTER} violations`, async () => {
    const rex = await connect();
    await pings(rex, MAX);
    for (let i = 0; i < BLOCK_AFTER; i++) expectRateLimited(await rex.request({ type: 'ping' }));
    await rex.expectNone(is('closing'), 150);
    expect(system.audit.some((l) => l.event === 'user.blocked')).toBe(false);
    const another = await connect();
    expect(another.ws.readyState).toBe(another.ws.OPEN);
  });

  it('a block set elsewhere closes the socket on its next frame, and the sweep closes idle ones', async () => {
    const active = await connect();
    const idle = await connect();
    await putBlock(system.deps, blockId.user('rex'), 600, 'by an operator', 'test');
    active.send({ type: 'ping', id: 'p' });
    await active.next(is('closing', { reason: 'blocked' }));
    await active.closed;
    expect(active.count(is('pong'))).toBe(0);
    await system.sweep();
    await idle.next(is('closing', { reason: 'blocked' }));
    expect((await idle.closed).code).toBe(1000);
  });
});
