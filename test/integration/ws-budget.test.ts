import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blockId, putBlock } from '../../lambdas/core/access.ts';
import type { ConnectionsApi } from '../../lambdas/core/deps.ts';
import { putGrant } from '../../lambdas/core/grants.ts';
import { joinRoom } from '../../lambdas/core/memberships.ts';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { type SocketRow, socketsOfUser } from '../../lambdas/core/socket-rows.ts';
import { issueTicket } from '../../lambdas/core/tokens.ts';
import { type ProbeCall, RoundTripProbe } from '../kit/round-trips.ts';
import {
  accessTokens,
  loginWithRoles,
  registerAndLogin,
  startTestSystem,
  startWsTestSystem,
  type TestSystem,
} from '../kit/system.ts';
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

  it('posts after at most two round trips, the grant read in the first and again beside the Query and the seq update', async () => {
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
      'UpdateItemCommand',
    ]);
    expect(Math.max(...before.map((c) => c.depth))).toBeLessThanOrEqual(2);
    for (const read of before.filter((c) => c.name === 'BatchGetItemCommand'))
      expect(tablesOf(read)).toContain(system.deps.tables.grants);
  });
});

describe('chat message budget', () => {
  /** The calls before the first PostToConnection of a message `bea` sends to `cyd`'s room. */
  async function beforeFanOut(frame: Record<string, unknown>): Promise<ProbeCall[]> {
    const room = freshRoom();
    const [bea, cy] = await inRoom(room, ['bea', 'cyd']);
    await quiet();
    (bea as Client).send({ type: 'message', room, text: 'budget', id: 'b', ...frame });
    await (bea as Client).next(is('ack'));
    await (cy as Client).next(is('message', { text: 'budget' }));
    const firstPost = probe.calls.findIndex((c) => c.kind === 'post');
    expect(firstPost).toBeGreaterThan(-1);
    expect(probe.db().some((c) => c.name === 'ScanCommand')).toBe(false);
    return probe.calls.slice(0, firstPost);
  }
  const messages = () => system.deps.tables.messages;

  it('makes at most two DynamoDB round trips before the first PostToConnection: UpdateItem + BatchGetItem, then the Query beside the seq update and the re-read of the sender', async () => {
    const before = await beforeFanOut({});
    expect(before.map((c) => c.name).sort()).toEqual([
      'BatchGetItemCommand',
      'BatchGetItemCommand',
      'QueryCommand',
      'UpdateItemCommand',
      'UpdateItemCommand',
    ]);
    expect(Math.max(...before.map((c) => c.depth))).toBeLessThanOrEqual(2);
    // The seq update runs beside the members Query, not after it.
    const seqUpdate = before.find((c) => c.name === 'UpdateItemCommand' && c.tables.includes(messages()));
    const members = before.find((c) => c.name === 'QueryCommand');
    expect(seqUpdate?.depth).toBe(2);
    expect(members?.depth).toBe(2);
  });

  it('makes at most three with an idempotencyKey: its conditional PutItem comes after the seq update', async () => {
    const before = await beforeFanOut({ idempotencyKey: 'budget-key' });
    expect(Math.max(...before.map((c) => c.depth))).toBeLessThanOrEqual(3);
    const claim = before.find((c) => c.name === 'PutItemCommand' && c.tables.includes(messages()));
    expect(claim?.depth).toBe(3);
    expect(before.find((c) => c.name === 'QueryCommand')?.depth).toBe(2);
  });

  it('answers a repeated key without any post: neither stored nor delivered again', async () => {
    const room = freshRoom();
    const [bea, cy] = await inRoom(room, ['bea', 'cyd']);
    const first = await (bea as Client).request({
      type: 'message',
      room,
      text: 'once',
      idempotencyKey: 'k1',
    });
    await (cy as Client).next(is('message', { text: 'once' }));
    await quiet();
    const again = await (bea as Client).request({
      type: 'message',
      room,
      text: 'once',
      idempotencyKey: 'k1',
    });
    expect(again).toMatchObject({ messageId: first.messageId, seq: first.seq, duplicate: true });
    expect(probe.calls.filter((c) => c.kind === 'post')).toHaveLength(0);
    expect(probe.db().filter((c) => c.name === 'PutItemCommand')).toHaveLength(1); // the refused claim
  });
});

describe('join budget', () => {
  it('recovers with one Query on the history, never a Scan, in one round trip beside the join', async () => {
    const room = freshRoom();
    const [bea] = await inRoom(room, ['bea']);
    const first = await (bea as Client).request({ type: 'message', room, text: 'r1' });
    await (bea as Client).request({ type: 'message', room, text: 'r2' });
    const cy = await connect('cyd');
    await quiet();
    const joined = await cy.request({ type: 'join', room, since: { epoch: first.epoch, seq: first.seq } });
    expect(joined).toMatchObject({ recovered: true, history: [{ text: 'r2' }] });
    const history = probe.db().filter((c) => c.tables.includes(messages()));
    expect(history.map((c) => c.name).sort()).toEqual(['GetItemCommand', 'QueryCommand']);
    expect(new Set(history.map((c) => c.depth)).size).toBe(1);
    expect(probe.db().some((c) => c.name === 'ScanCommand')).toBe(false);
  });
  const messages = () => system.deps.tables.messages;
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

describe('the ack of a message to a big room', () => {
  let big: TestSystem;
  const bigProbe = new RoundTripProbe();
  const DIRECT_MAX = 3;
  let ivyToken = '';

  /** Opens `n` sockets of one user, each with its connection id, found as it opened (closed after each test). */
  async function openSockets(n: number): Promise<{ client: Client; id: string }[]> {
    const out: { client: Client; id: string }[] = [];
    const known = new Set((await socketsOfUser(big.deps, 'ivy')).map((c) => c.connectionId));
    for (let i = 0; i < n; i++) {
      const client = await openClient(big.wsUrl, { protocols: ['jwt', ivyToken] });
      const fresh = (await socketsOfUser(big.deps, 'ivy')).filter((c) => !known.has(c.connectionId));
      expect(fresh).toHaveLength(1);
      const row = fresh[0] as SocketRow;
      known.add(row.connectionId);
      out.push({ client, id: row.connectionId });
    }
    return out;
  }

  async function joinAll(sockets: readonly { id: string }[], room: string): Promise<void> {
    const rows = await socketsOfUser(big.deps, 'ivy');
    for (const s of sockets) {
      const row = rows.find((r) => r.connectionId === s.id);
      if (!row) throw new Error('no row for a socket');
      expect(await joinRoom(big.deps, row, room)).toBe('joined');
    }
  }

  beforeAll(async () => {
    big = await startTestSystem({ RATE_LIMIT_MAX: '100000', MAX_CONNECTIONS_PER_USER: '100' }, undefined, {
      sweeperTimer: false,
      fanout: { directMax: DIRECT_MAX, membersPerJob: 4, jobMax: 8 },
    });
    ivyToken = (await registerAndLogin(big, 'ivy')).access_token;
    bigProbe.attach(big.deps.db);
    const bigApi = big.deps.api as ConnectionsApi;
    bigApi.post = bigProbe.wrapApi({
      post: bigApi.post.bind(bigApi),
      close: bigApi.close,
      exists: bigApi.exists,
    }).post;
  }, 120_000);
  afterAll(async () => {
    await big.close();
  });

  it('spends two round trips before the store, reads at most directMax + 1 members and posts nothing before the ack, at any room size', async () => {
    const sockets = await openSockets(40);
    const signatures: string[][] = [];
    for (const size of [12, 40]) {
      const room = `hall-${size}`;
      const inside = sockets.slice(0, size);
      await joinAll(inside, room);
      await waitQuiet(bigProbe);
      big.queue.pause();
      const ack = await (inside[0] as { client: Client }).client.request({
        type: 'message',
        room,
        text: `to ${size}`,
      });
      expect(ack).toMatchObject({ type: 'ack' });
      const before = bigProbe.calls.map((c) => ({ ...c }));
      big.queue.resume();

      expect(before.filter((c) => c.kind === 'post')).toEqual([]);
      const db = before.filter((c) => c.kind === 'db');
      const store = db.filter((c) => c.name === 'PutItemCommand');
      expect(store).toHaveLength(1);
      expect(Math.max(...db.filter((c) => c.name !== 'PutItemCommand').map((c) => c.depth))).toBe(2);
      expect(store[0]?.depth).toBe(3);
      const query = db.find((c) => c.name === 'QueryCommand');
      expect(query?.returned).toBeLessThanOrEqual(DIRECT_MAX + 1);
      signatures.push(db.map((c) => `${c.name}@${c.depth}`).sort());

      // Then the workers deliver it to every member once, and to nobody else.
      const mine = is('message', { messageId: ack.messageId });
      await Promise.all(inside.map((s) => s.client.next(mine, 10_000)));
      await big.queue.drained();
      expect(inside.every((s) => s.client.count(mine) === 1)).toBe(true);
      expect(sockets.slice(size).every((s) => s.client.count(mine) === 0)).toBe(true);
    }
    expect(signatures[1]).toEqual(signatures[0]);
  }, 120_000);

  it('answers an HTTP publish to a big room with 202 queued, then the workers deliver it to each member once', async () => {
    const herald = await loginWithRoles(big, 'herald', ['publisher']);
    const room = 'hall-http';
    const inside = await openSockets(20);
    await joinAll(inside, room);
    const res = await big.request('POST', `/admin/rooms/${room}/messages`, {
      token: herald,
      body: { text: 'to the hall' },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      messageId: expect.any(String),
      epoch: expect.any(String),
      seq: expect.any(Number),
      queued: true,
    });
    const mine = is('message', { messageId: res.body.messageId as string, from: 'herald' });
    await Promise.all(inside.map((s) => s.client.next(mine, 10_000)));
    await big.queue.drained();
    expect(inside.map((s) => s.client.count(mine))).toEqual(inside.map(() => 1));
    // The audit line counts the jobs queued for the workers.
    const line = big.audit.find((l) => l.event === 'admin.publish' && l.room === room);
    expect(line?.count).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

/** Waits until a probe's store has been idle for 50 ms, then resets it. */
async function waitQuiet(p: RoundTripProbe): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    p.reset();
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (p.calls.length === 0 && p.inFlight === 0) break;
    if (Date.now() > deadline) throw new Error('the store never went quiet');
  }
  p.reset();
}
