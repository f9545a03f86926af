import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { socketsOfUser } from '../../lambdas/core/socket-rows.ts';
import { registerAndLogin, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, is, openClient, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const tokens: Record<string, string> = {};
const USERS = ['dina', 'dora', 'dory', 'duke'] as const;
type User = (typeof USERS)[number];

/** What `@connections` answers instead of serving, per connection id and method; consumed as used. */
const faults = new Map<string, { method: string; status: 410 | 429 | 500; times: number }>();
let faultsAnswered = 0;

beforeAll(async () => {
  system = await startWsTestSystem(
    {},
    {
      managementFault: (method, connectionId) => {
        const f = faults.get(connectionId);
        if (!f || f.method !== method || f.times <= 0) return undefined;
        f.times--;
        faultsAnswered++;
        return f.status;
      },
    },
  );
  for (const u of USERS) tokens[u] = (await registerAndLogin(system, u)).access_token;
});
afterEach(() => {
  terminateAll();
  faults.clear();
});
afterAll(async () => {
  await system.close();
});

let rooms = 0;
async function room(): Promise<{ name: string; clients: Record<User, Client>; ids: Record<User, string> }> {
  const name = `delivery-${++rooms}`;
  const clients = {} as Record<User, Client>;
  const ids = {} as Record<User, string>;
  for (const u of USERS) {
    const before = new Set((await socketsOfUser(system.deps, u)).map((c) => c.connectionId));
    clients[u] = await openClient(system.wsUrl, { protocols: ['jwt', tokens[u] ?? ''] });
    await clients[u].request({ type: 'join', room: name });
    const mine = (await socketsOfUser(system.deps, u)).find((c) => !before.has(c.connectionId));
    ids[u] = mine?.connectionId ?? '';
  }
  await until('every member_joined', () =>
    USERS.every((u, i) => clients[u].count(is('member_joined', { room: name })) === USERS.length - 1 - i),
  );
  return { name, clients, ids };
}

const deliveryFailed = () => system.audit.filter((l) => l.event === 'delivery.failed');

describe('fan-out when @connections throttles or fails', () => {
  it('retries a member throttled four times in a row (429) and delivers to it exactly once', async () => {
    const { name, clients, ids } = await room();
    faults.set(ids.dora, { method: 'POST', status: 429, times: 4 });
    const answeredBefore = faultsAnswered;
    const failedBefore = deliveryFailed().length;
    await clients.dina.request({ type: 'message', room: name, text: 'through' });
    for (const u of USERS) await clients[u].next(is('message', { text: 'through' }));
    expect(faultsAnswered - answeredBefore).toBe(4);
    await clients.dora.expectNone(is('message', { text: 'through' }), 100);
    expect(deliveryFailed()).toHaveLength(failedBefore);
  });

  it('goes on for the healthy members when one keeps answering 500, and logs one delivery.failed with counts', async () => {
    const { name, clients, ids } = await room();
    faults.set(ids.dory, { method: 'POST', status: 500, times: 1000 });
    const failedBefore = deliveryFailed().length;
    const ack = await clients.dina.request({ type: 'message', room: name, text: 'partial' });
    expect(ack.type).toBe('ack');
    for (const u of ['dina', 'dora', 'duke'] as const)
      await clients[u].next(is('message', { text: 'partial' }));
    await clients.dory.expectNone(is('message', { text: 'partial' }), 100);
    const lines = deliveryFailed().slice(failedBefore);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      event: 'delivery.failed',
      reason: 'message',
      room: name,
      count: 4,
      delivered: 3,
      failed: 1,
      errorName: 'InternalServerErrorException',
    });
    expect(Number(lines[0]?.retries)).toBeGreaterThanOrEqual(1);
    // Still a member: a failed post is not a gone socket.
    expect((await roomMembers(system.deps, name)).map((m) => m.connectionId)).toContain(ids.dory);
  });

  it('forgets a member that answers 410 exactly once, even when two messages find it gone together, and closes it', async () => {
    const { name, clients, ids } = await room();
    faults.set(ids.duke, { method: 'POST', status: 410, times: 1000 });
    await Promise.all([
      clients.dina.request({ type: 'message', room: name, text: 'one' }),
      clients.dora.request({ type: 'message', room: name, text: 'two' }),
    ]);
    await clients.dina.next(is('member_left', { room: name, username: 'duke' }));
    await clients.dina.expectNone(is('member_left', { room: name }), 300);
    expect(clients.dora.count(is('member_left', { room: name, username: 'duke' }))).toBe(1);
    expect((await roomMembers(system.deps, name)).map((m) => m.connectionId)).not.toContain(ids.duke);
    // The socket the rows no longer serve does not stay open and deaf.
    await clients.duke.closed;
  });

  it('still closes a socket the server ends when its closing frame cannot be posted (500)', async () => {
    const pair = await registerAndLogin(system, 'dexter');
    const client = await openClient(system.wsUrl, { protocols: ['jwt', pair.access_token] });
    const [row] = await socketsOfUser(system.deps, 'dexter');
    faults.set(row?.connectionId ?? '', { method: 'POST', status: 500, times: 1000 });
    expect((await system.request('POST', '/auth/logout', { token: pair.access_token })).status).toBe(204);
    const closed = await Promise.race([client.closed, new Promise((r) => setTimeout(() => r('open'), 3000))]);
    expect(closed).not.toBe('open');
  });
});
