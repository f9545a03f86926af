import { decodeJwt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { revokeAccessToken, revokeUserTokens } from '../../lambdas/core/access.ts';
import {
  PASSWORD,
  registerAndLogin,
  startTestSystem,
  startWsTestSystem,
  type TestSystem,
} from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, is, openClient, refusalStatus, terminateAll } from '../kit/ws-client.ts';

const TTL_S = 300;
const SKEW_S = 30;

let system: TestSystem;

// Every test moves the clock, so each gets a system of its own.
beforeEach(async () => {
  system = await startWsTestSystem({ ACCESS_TOKEN_TTL_S: String(TTL_S), CLOCK_SKEW_S: String(SKEW_S) });
});
afterEach(async () => {
  terminateAll();
  await system.close();
});

function connect(token: string): Promise<Client> {
  return openClient(system.wsUrl, { protocols: ['jwt', token] });
}

async function login(username: string) {
  const res = await system.request('POST', '/auth/login', { body: { username, password: PASSWORD } });
  expect(res.status).toBe(200);
  return res.body as { access_token: string; refresh_token: string };
}

const expOf = (token: string) => Number(decodeJwt(token).exp);

/** Waits for `{"type":"closing","reason"}` and then the close, in that order. */
async function expectServerClose(client: Client, reason: string): Promise<void> {
  await client.next(is('closing', { reason }));
  const closed = await client.closed;
  expect(closed.code).toBe(1000);
  const last = client.received.at(-1);
  expect(last).toEqual({ type: 'closing', reason });
}

async function expectStillOpen(client: Client): Promise<void> {
  expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  expect(client.count(is('closing'))).toBe(0);
}

describe('refresh_token', () => {
  it('accepts a new token of the same user: token_refreshed with its exp, and the socket outlives the old exp', async () => {
    const first = await registerAndLogin(system, 'rita');
    const socket = await connect(first.access_token);
    system.clock.advance(200);
    const refreshed = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: first.refresh_token },
    });
    expect(refreshed.status).toBe(200);
    const next = String(refreshed.body.access_token);
    expect(expOf(next)).toBe(expOf(first.access_token) + 200);

    socket.send({ type: 'refresh_token', token: next, id: 'rt' });
    expect(await socket.next(is('token_refreshed'))).toEqual({
      type: 'token_refreshed',
      exp: expOf(next),
      id: 'rt',
    });
    // Past the old token's expiry and skew, before the new one's.
    system.clock.advance(TTL_S - 200 + SKEW_S + 10);
    await system.sweep();
    await socket.expectNone(is('closing'), 150);
    expect(await socket.request({ type: 'whoami' })).toMatchObject({ type: 'identity', exp: expOf(next) });
    await expectStillOpen(socket);
  });

  it('the same timeline without a refresh closes the socket (control for the test above)', async () => {
    const first = await registerAndLogin(system, 'rita');
    const socket = await connect(first.access_token);
    system.clock.advance(TTL_S + SKEW_S + 10);
    await system.sweep();
    await expectServerClose(socket, 'token_expired');
  });

  it('after a refresh, logging out the new token’s family closes the socket', async () => {
    await registerAndLogin(system, 'rita');
    const first = await login('rita');
    const second = await login('rita'); // another family
    const socket = await connect(first.access_token);
    expect(await socket.request({ type: 'refresh_token', token: second.access_token })).toMatchObject({
      type: 'token_refreshed',
    });
    expect((await system.request('POST', '/auth/logout', { token: second.access_token })).status).toBe(204);
    await expectServerClose(socket, 'token_revoked');
  });

  it('refuses a token of another user with invalid_token; the socket stays open with its identity', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const sam = await registerAndLogin(system, 'sam');
    const socket = await connect(rita.access_token);
    socket.send({ type: 'refresh_token', token: sam.access_token, id: 'x' });
    expect(await socket.next(is('error'))).toMatchObject({ type: 'error', code: 'invalid_token', id: 'x' });
    expect(await socket.request({ type: 'whoami' })).toMatchObject({
      username: 'rita',
      exp: expOf(rita.access_token),
    });
    await expectStillOpen(socket);
  });

  it('refuses garbage with invalid_token; the socket stays open', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const socket = await connect(rita.access_token);
    for (const token of ['garbage', 'a.b.c', `${rita.access_token}x`]) {
      socket.send({ type: 'refresh_token', token, id: token.slice(0, 8) });
      expect(await socket.next(is('error'))).toMatchObject({ code: 'invalid_token', id: token.slice(0, 8) });
    }
    await expectStillOpen(socket);
  });

  it('refuses a revoked token of the same user with invalid_token', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const other = await login('rita');
    expect((await system.request('POST', '/auth/logout', { token: other.access_token })).status).toBe(204);
    const socket = await connect(rita.access_token);
    socket.send({ type: 'refresh_token', token: other.access_token, id: 'rv' });
    expect(await socket.next(is('error'))).toMatchObject({ code: 'invalid_token', id: 'rv' });
    await expectStillOpen(socket);
  });

  it('refuses an expired token of the same user with invalid_token', async () => {
    await registerAndLogin(system, 'rita');
    const old = await login('rita');
    system.clock.advance(TTL_S + SKEW_S + 1);
    const fresh = await login('rita');
    const socket = await connect(fresh.access_token);
    socket.send({ type: 'refresh_token', token: old.access_token, id: 'old' });
    expect(await socket.next(is('error'))).toMatchObject({ code: 'invalid_token', id: 'old' });
    expect(await socket.request({ type: 'whoami' })).toMatchObject({ exp: expOf(fresh.access_token) });
  });
});

describe('expiry', () => {
  it('refuses a handshake with an expired token (401 token_expired), but not within the clock skew', async () => {
    const rita = await registerAndLogin(system, 'rita');
    system.clock.advance(TTL_S + SKEW_S - 2);
    const inSkew = await connect(rita.access_token);
    await inSkew.close();
    system.clock.advance(4);
    const before = system.audit.length;
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', rita.access_token] })).toBe(401);
    expect(system.audit.slice(before)).toContainEqual(
      expect.objectContaining({ event: 'ws.denied', reason: 'token_expired' }),
    );
  });

  it('the sweep closes a socket whose token expired with closing token_expired; fresher sockets stay', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const expiring = await connect(rita.access_token);
    system.clock.advance(100);
    const sam = await registerAndLogin(system, 'sam');
    const fresh = await connect(sam.access_token);
    system.clock.advance(TTL_S - 100 + SKEW_S + 1);
    const before = system.audit.length;
    await system.sweep();
    await expectServerClose(expiring, 'token_expired');
    await expectStillOpen(fresh);
    expect(system.audit.slice(before)).toContainEqual(
      expect.objectContaining({ event: 'ws.closed_by_server', reason: 'token_expired', username: 'rita' }),
    );
  });

  it('npm start’s sweeper timer closes an expired socket within one sweep interval', async () => {
    const timed = await startTestSystem({ ACCESS_TOKEN_TTL_S: String(TTL_S), SWEEP_INTERVAL_S: '1' });
    try {
      const rita = await registerAndLogin(timed, 'rita');
      const socket = await openClient(timed.wsUrl, { protocols: ['jwt', rita.access_token] });
      timed.clock.advance(TTL_S + SKEW_S + 1);
      // One interval (1 s) plus the time a sweep takes.
      await socket.next(is('closing', { reason: 'token_expired' }), 2500);
      await socket.closed;
    } finally {
      await timed.close();
    }
  });

  it('the next frame on a socket whose token expired closes it with token_expired, unanswered', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const socket = await connect(rita.access_token);
    system.clock.advance(TTL_S + SKEW_S + 1);
    socket.send({ type: 'ping', id: 'late' });
    await expectServerClose(socket, 'token_expired');
    expect(socket.count(is('pong'))).toBe(0);
  });
});

describe('logout', () => {
  it('closes every socket of the token’s family with closing token_revoked; other sockets stay', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const sam = await registerAndLogin(system, 'sam');
    const ritaElsewhere = await login('rita'); // another family of the same user
    const a = await connect(rita.access_token);
    const b = await openClient(system.wsUrl, { query: { token: rita.access_token } });
    // A token refreshed from the same family belongs to it too.
    const sibling = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: rita.refresh_token },
    });
    const c = await connect(String(sibling.body.access_token));
    const other = await connect(ritaElsewhere.access_token);
    const samSocket = await connect(sam.access_token);
    for (const s of [a, b, c, other, samSocket]) await s.request({ type: 'join', room: 'lobby' });

    const before = system.audit.length;
    expect((await system.request('POST', '/auth/logout', { token: rita.access_token })).status).toBe(204);
    await Promise.all([a, b, c].map((s) => expectServerClose(s, 'token_revoked')));
    await expectStillOpen(other);
    await expectStillOpen(samSocket);
    const closedByServer = system.audit
      .slice(before)
      .filter((l) => l.event === 'ws.closed_by_server' && l.reason === 'token_revoked');
    expect(closedByServer).toHaveLength(3);
    expect(system.audit.slice(before)).toContainEqual(
      expect.objectContaining({ event: 'token.revoked', username: 'rita' }),
    );
    // The closed sockets left the room.
    expect((await samSocket.request({ type: 'presence', room: 'lobby' })).members).toEqual(['rita', 'sam']);
    const presence = await other.request({ type: 'presence', room: 'lobby' });
    expect(presence.members).toEqual(['rita', 'sam']);
  });
});

describe('rooms after a server-initiated close', () => {
  /** Rita joins the lobby, then Sam 100 s later, so that Rita's token expires first. */
  async function ritaThenSamInLobby() {
    const rita = await registerAndLogin(system, 'rita');
    const ritaSocket = await connect(rita.access_token);
    await ritaSocket.request({ type: 'join', room: 'lobby' });
    system.clock.advance(100);
    const sam = await registerAndLogin(system, 'sam');
    const samSocket = await connect(sam.access_token);
    await samSocket.request({ type: 'join', room: 'lobby' });
    return { ritaSocket, samSocket };
  }

  it('tells the room member_left when the sweep closes an expired member', async () => {
    const { ritaSocket, samSocket } = await ritaThenSamInLobby();
    system.clock.advance(TTL_S - 100 + SKEW_S + 1);
    await system.sweep();
    await expectServerClose(ritaSocket, 'token_expired');
    expect(await samSocket.next(is('member_left'))).toEqual({
      type: 'member_left',
      room: 'lobby',
      username: 'rita',
    });
    expect((await samSocket.request({ type: 'presence', room: 'lobby' })).members).toEqual(['sam']);
  });

  it('tells the room member_left even when the closed client is slow to answer the close (as on AWS, where $disconnect comes late)', async () => {
    const { ritaSocket, samSocket } = await ritaThenSamInLobby();
    // Rita's client stops reading once told it is closing: $disconnect fires only after it answers.
    ritaSocket.ws.on('message', (data) => {
      if (String(data).includes('"closing"')) ritaSocket.ws.pause();
    });
    system.clock.advance(TTL_S - 100 + SKEW_S + 1);
    await system.sweep(); // returns once the sweeper has closed the socket and removed its rows
    await until('the client to pause', () => ritaSocket.ws.isPaused);
    ritaSocket.ws.resume();
    await ritaSocket.closed;
    expect(await samSocket.next(is('member_left'))).toEqual({
      type: 'member_left',
      room: 'lobby',
      username: 'rita',
    });
  });

  it('tells the room member_left when logout closes a member', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const sam = await registerAndLogin(system, 'sam');
    const ritaSocket = await connect(rita.access_token);
    const samSocket = await connect(sam.access_token);
    await ritaSocket.request({ type: 'join', room: 'lobby' });
    await samSocket.request({ type: 'join', room: 'lobby' });
    expect((await system.request('POST', '/auth/logout', { token: rita.access_token })).status).toBe(204);
    await expectServerClose(ritaSocket, 'token_revoked');
    expect(await samSocket.next(is('member_left'))).toEqual({
      type: 'member_left',
      room: 'lobby',
      username: 'rita',
    });
  });
});

describe('a revocation whose push was missed', () => {
  it('the next frame closes the socket with token_revoked, unanswered', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const socket = await connect(rita.access_token);
    const claims = decodeJwt(rita.access_token);
    await revokeAccessToken(system.deps, String(claims.jti), Number(claims.exp));
    socket.send({ type: 'whoami', id: 'after' });
    await expectServerClose(socket, 'token_revoked');
    expect(socket.count(is('identity'))).toBe(0);
  });

  it('the sweep closes the socket with token_revoked', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const sam = await registerAndLogin(system, 'sam');
    const socket = await connect(rita.access_token);
    const bystander = await connect(sam.access_token);
    const claims = decodeJwt(rita.access_token);
    await revokeAccessToken(system.deps, String(claims.jti), Number(claims.exp));
    await system.sweep();
    await expectServerClose(socket, 'token_revoked');
    await expectStillOpen(bystander);
  });

  it('revoking every token of a user issued before now closes the user’s sockets and refuses their tokens', async () => {
    const rita = await registerAndLogin(system, 'rita');
    const sam = await registerAndLogin(system, 'sam');
    const socket = await connect(rita.access_token);
    const bystander = await connect(sam.access_token);
    await revokeUserTokens(system.deps, String(decodeJwt(rita.access_token).sub));
    await system.sweep();
    await expectServerClose(socket, 'token_revoked');
    await expectStillOpen(bystander);
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', rita.access_token] })).toBe(401);
    system.clock.advance(1);
    const fresh = await login('rita');
    const again = await connect(fresh.access_token);
    await expectStillOpen(again);
  });
});
