import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blockId, putBlock } from '../../lambdas/core/access.ts';
import { roomMembers } from '../../lambdas/core/connections.ts';
import type { ConnectionsApi } from '../../lambdas/core/deps.ts';
import { putGrant } from '../../lambdas/core/grants.ts';
import { issueTicket } from '../../lambdas/core/tokens.ts';
import { type ProbeCall, RoundTripProbe } from '../kit/round-trips.ts';
import { accessTokens, registerAndLogin, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, is, openClient, refusalStatus, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const probe = new RoundTripProbe();
let tokens: Record<string, string> = {};
let api: ConnectionsApi;
let originalPost: ConnectionsApi['post'] | undefined;
let detach: (() => void) | undefined;

beforeAll(async () => {
  system = await startWsTestSystem();
  tokens = await accessTokens(system, ['bea', 'cyd', 'dot', 'eve', 'fay', 'gus', 'hal']);
  detach = probe.attach(system.deps.db);
  if (!system.deps.api) throw new Error('the local system has no @connections API');
  api = system.deps.api;
  originalPost = api.post;
  // Only posts are recorded: the handlers hold this very object, so its post is swapped in place.
  api.post = probe.wrapApi({ post: originalPost, close: api.close, exists: api.exists }).post;
});
afterEach(() => terminateAll());
afterAll(async () => {
  detach?.();
  if (originalPost) api.post = originalPost;
  await system.close();
});

const connect = (user: string): Promise<Client> =>
  openClient(system.wsUrl, { protocols: ['jwt', tokens[user] ?? ''] });

const tablesOf = (call: ProbeCall | undefined): string[] => [...(call?.tables ?? [])].sort();

const touchesConnections = (c: ProbeCall): boolean => c.tables.includes(system.deps.tables.connections);

/** The DynamoDB calls of the authorizer: those made before `$connect` first touches the connections table. */
function authorizerCalls(): ProbeCall[] {
  const db = probe.db();
  const connectAt = db.findIndex(touchesConnections);
  expect(connectAt).toBeGreaterThan(-1);
  return db.slice(0, connectAt);
}

let rooms = 0;
const freshRoom = () => `budget-${++rooms}`;

async function inRoom(room: string, users: string[]): Promise<Client[]> {
  const clients: Client[] = [];
  for (const u of users) {
    const c = await connect(u);
    await c.request({ type: 'join', room });
    clients.push(c);
  }
  return clients;
}

/** Waits until the store has been idle for 50 ms (setup's member_joined and $disconnect done), then resets the probe. */
async function quiet(): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    probe.reset();
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (probe.calls.length === 0 && probe.inFlight === 0) break;
    if (Date.now() > deadline) throw new Error('the store never went quiet');
  }
  probe.reset();
}

describe('authorizer budget', () => {
  it('verifies a plain token handshake with exactly one DynamoDB call: one BatchGetItem', async () => {
    await quiet();
    const bea = await connect('bea');
    const calls = authorizerCalls();
    expect(calls.map((c) => c.name)).toEqual(['BatchGetItemCommand']);
    expect(calls[0]?.depth).toBe(1);
    // Revocations and blocks, across tables, in that one call.
    expect(tablesOf(calls[0])).toEqual([system.deps.tables.blocklist, system.deps.tables.revoked].sort());
    await bea.close();
  });

  it('refuses a blocked user after that same single BatchGetItem and nothing else', async () => {
    const pair = await registerAndLogin(system, 'blocked_budget');
    await putBlock(system.deps, blockId.user('blocked_budget'), 600, 'test', 'test');
    await quiet();
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', pair.access_token] })).toBe(403);
    expect(probe.db().map((c) => c.name)).toEqual(['BatchGetItemCommand']);
  });

  it('spends a ticket in the same round trip as the revocation and block checks', async () => {
    const claims = decodeJwt(tokens.cyd ?? '');
    const { ticket } = await issueTicket(system.deps, {
      sub: String(claims.sub),
      username: String(claims.username),
      roles: claims.roles as string[],
      jti: String(claims.jti),
      sid: String(claims.sid),
      iat: Number(claims.iat),
      exp: Number(claims.exp),
    });
    await quiet();
    const cy = await openClient(system.wsUrl, { query: { ticket } });
    const calls = authorizerCalls();
    expect(calls.map((c) => c.name).sort()).toEqual(['BatchGetItemCommand', 'PutItemCommand']);
    expect(calls.every((c) => c.depth === 1)).toBe(true);
    await cy.close();
  });
});

describe('$connect budget', () => {
  it('stores the socket, takes its slot and puts it in its user: room in one round trip', async () => {
    await quiet();
    const bea = await connect('bea');
    await until('$connect to finish', () => probe.inFlight === 0);
    const db = probe.db();
    const connectCalls = db.slice(db.findIndex(touchesConnections));
    // Two PutItems (the row, listing its user: room, and that room's membership) and the slot's UpdateItem, side by side.
    expect(connectCalls.map((c) => c.name).sort()).toEqual([
      'PutItemCommand',
      'PutItemCommand',
      'UpdateItemCommand',
    ]);
    expect(new Set(connectCalls.map((c) => c.depth)).size).toBe(1);
    const [member] = await roomMembers(system.deps, 'user:bea', { consistent: true });
    expect(member?.username).toBe('bea');
    await bea.close();
  });
});

describe('private: room budget', () => {
  const team = 'private:budget-team';
  beforeAll(async () => {
    await putGrant(system.deps, { username: 'test' }, team, 'bea', { access: 'member' });
    await putGrant(system.deps, { username: 'test' }, team, 'cyd', { access: 'reader' });
  });

  it('reads the grant in the first round trip, beside the rate-limit counter and the socket row, and joins in three', async () => {
    const bea = await connect('bea');
    await quiet();
    expect(await bea.request({ type: 'join', room: team })).toMatchObject({
      type: 'joined',
      access: 'member',
    });
    const db = probe.db();
    const first = db.filter((c) => c.depth === 1);
    expect(first.map((c) => c.name).sort()).toEqual(['BatchGetItemCommand', 'UpdateItemCommand']);
    expect(tablesOf(first.find((c) => c.name === 'BatchGetItemCommand'))).toEqual(
      [
        system.deps.tables.blocklist,
        system.deps.tables.connections,
        system.deps.tables.grants,
        system.deps.tables.revoked,
      ].sort(),
    );
    // As an open room's join: membership, then the row's conditional update (with the grant read again beside it).
    expect(Math.max(...db.map((c) => c.depth))).toBe(3);
  });

  it('posts after at most two round trips, the grant read in the first and again beside the Query', async () => {
    const [bea, cyd] = await Promise.all([connect('bea'), connect('cyd')]);
    await bea.request({ type: 'join', room: team });
    await cyd.request({ type: 'join', room: team });
    await quiet();
    (bea as Client).send({ type: 'message', room: team, text: 'budget', id: 'p' });
    await bea.next(is('ack'));
    await cyd.next(is('message', { text: 'budget' }));
    const firstPost = probe.calls.findIndex((c) => c.kind === 'post');
    const before = probe.calls.slice(0, firstPost);
    expect(before.map((c) => c.name).sort()).toEqual([
      'BatchGetItemCommand',
      'BatchGetItemCommand',
      'QueryCommand',
      'UpdateItemCommand',
    ]);
    expect(Math.max(...before.map((c) => c.depth))).toBeLessThanOrEqual(2);
    for (const read of before.filter((c) => c.name === 'BatchGetItemCommand'))
      expect(tablesOf(read)).toContain(system.deps.tables.grants);
  });
});

describe('chat message budget', () => {
  it('makes at most two DynamoDB round trips before the first PostToConnection: UpdateItem + BatchGetItem, then one Query beside the re-read of the sender', async () => {
    const room = freshRoom();
    const [bea, cy] = await inRoom(room, ['bea', 'cyd']);
    await quiet();
    (bea as Client).send({ type: 'message', room, text: 'budget', id: 'b' });
    await (bea as Client).next(is('ack'));
    await (cy as Client).next(is('message', { text: 'budget' }));

    const firstPost = probe.calls.findIndex((c) => c.kind === 'post');
    expect(firstPost).toBeGreaterThan(-1);
    const before = probe.calls.slice(0, firstPost);
    expect(before.map((c) => c.name).sort()).toEqual([
      'BatchGetItemCommand',
      'BatchGetItemCommand',
      'QueryCommand',
      'UpdateItemCommand',
    ]);
    expect(Math.max(...before.map((c) => c.depth))).toBeLessThanOrEqual(2);
    expect(probe.calls[firstPost]?.depth).toBeLessThanOrEqual(3);
    expect(probe.db().some((c) => c.name === 'ScanCommand')).toBe(false);
  });
});

describe('fan-out is proportional to the room', () => {
  it('posts once per member socket of the room and to nobody else, whatever the other rooms hold', async () => {
    const small = freshRoom();
    const big = freshRoom();
    const smallRoom = await inRoom(small, ['bea', 'cyd']);
    const bigRoom = await inRoom(big, ['dot', 'eve', 'fay', 'gus']);
    const idle = await connect('hal');

    await quiet();
    await (smallRoom[0] as Client).request({ type: 'message', room: small, text: 'to two' });
    for (const c of smallRoom) await c.next(is('message', { text: 'to two' }));
    const smallPosts = probe.calls.filter((c) => c.kind === 'post');
    expect(smallPosts).toHaveLength(2);
    const queries = probe.db().filter((c) => c.name === 'QueryCommand');
    expect(queries).toHaveLength(1);
    expect(probe.db().some((c) => c.name === 'ScanCommand')).toBe(false);
    await Promise.all([...bigRoom, idle].map((c) => c.expectNone(is('message'), 200)));

    await quiet();
    await (bigRoom[0] as Client).request({ type: 'message', room: big, text: 'to four' });
    for (const c of bigRoom) await c.next(is('message', { text: 'to four' }));
    expect(probe.calls.filter((c) => c.kind === 'post')).toHaveLength(4);
    await Promise.all([...smallRoom, idle].map((c) => c.expectNone(is('message', { text: 'to four' }), 200)));
  });
});
