import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deleteGrant, putGrant } from '../../lambdas/core/grants.ts';
import { closeUserSockets } from '../../lambdas/core/sockets.ts';
import { issueTicket, verifyAccessToken } from '../../lambdas/core/tokens.ts';
import { type ChatMessage, dmRoom, RealtimeError } from '../../web/client.ts';
import { LiveClock } from '../kit/clock.ts';
import { PASSWORD, startTestSystem, type TestSystem } from '../kit/system.ts';
import { sleep } from '../kit/wait.ts';
import {
  clientFor,
  closeClients,
  connectionIds,
  loggedIn,
  nextEvent,
  nodeSocket,
  record,
} from '../kit/web-client.ts';

let system: TestSystem;

interface Dialed {
  url: string;
  protocols: string[];
}

function recording(dialed: Dialed[]) {
  const socket = nodeSocket();
  return (url: string, protocols: string[]) => {
    dialed.push({ url, protocols });
    return socket(url, protocols);
  };
}

/** A server without `POST /auth/ws-ticket`: API Gateway's own 404 for an unknown route. */
async function withoutTickets(input: string, init?: RequestInit): Promise<Response> {
  if (input.endsWith('/auth/ws-ticket')) return Response.json({ message: 'Not Found' }, { status: 404 });
  return fetch(input, init);
}

/** A server with the ticket endpoint, answered from the core's own issueTicket. */
async function withTickets(input: string, init?: RequestInit): Promise<Response> {
  if (!input.endsWith('/auth/ws-ticket')) return fetch(input, init);
  const headers = (init?.headers ?? {}) as Record<string, string>;
  const token = String(headers.authorization).slice(7);
  const claims = await verifyAccessToken(system.deps, token);
  const { ticket, expiresIn } = await issueTicket(system.deps, claims);
  return Response.json({ ticket, expires_in: expiresIn });
}

beforeAll(async () => {
  system = await startTestSystem({ RATE_LIMIT_MAX: '1000' }, new LiveClock(), { sweeperTimer: false });
});
afterEach(closeClients);
afterAll(() => system.close());

describe('RealtimeClient over HTTP', () => {
  it('registers, logs in and learns the username and expiry', async () => {
    const client = clientFor(system);
    const before = Date.now();
    const username = await loggedIn(client);
    expect(client.username).toBe(username);
    expect(client.expiresAt).toBeGreaterThanOrEqual(before + 899_000);
    expect(client.accessToken).toMatch(/^ey/);
  });

  it('turns HTTP API errors into RealtimeErrors with the server code and status', async () => {
    const client = clientFor(system);
    const username = await loggedIn(client);
    const conflict = await client.register(username, PASSWORD).catch((e: unknown) => e);
    expect(conflict).toMatchObject({ code: 'conflict', status: 409 });
    const wrong = await client.login(username, 'not the password at all').catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(RealtimeError);
    expect(wrong).toMatchObject({ code: 'invalid_credentials', status: 401 });
    const offline = clientFor(system, { httpUrl: 'http://127.0.0.1:1' });
    await expect(offline.login('x', PASSWORD)).rejects.toMatchObject({ code: 'network' });
  });

  it('refuses to connect before login', async () => {
    await expect(clientFor(system).connect()).rejects.toMatchObject({ code: 'not_logged_in' });
  });
});

describe('RealtimeClient over the socket', () => {
  it('connects with the jwt subprotocol when the server has no ticket endpoint', async () => {
    const dialed: Dialed[] = [];
    const client = clientFor(system, { fetch: withoutTickets, createSocket: recording(dialed) });
    await loggedIn(client);
    await client.connect();
    expect(client.state).toBe('open');
    expect(dialed).toEqual([{ url: system.wsUrl, protocols: ['jwt', client.accessToken] }]);
    const me = await client.whoami();
    expect(me.username).toBe(client.username);
    // The answer is remembered: the next handshake goes straight to the subprotocol.
    client.disconnect();
    await client.connect();
    expect(dialed).toHaveLength(2);
  });

  it('connects with a single-use ticket when the server offers one, keeping the token out of the URL', async () => {
    const dialed: Dialed[] = [];
    const client = clientFor(system, { fetch: withTickets, createSocket: recording(dialed) });
    await loggedIn(client);
    await client.connect();
    expect(dialed).toHaveLength(1);
    const url = new URL(dialed[0]?.url ?? '');
    expect(url.searchParams.get('ticket')).toMatch(/^ey/);
    expect(dialed[0]?.url).not.toContain(client.accessToken);
    expect(dialed[0]?.protocols).toEqual([]);
    await expect(client.ping()).resolves.toMatchObject({ type: 'pong' });
  });

  it('fails clearly in ticket mode when the server has no ticket endpoint', async () => {
    const client = clientFor(system, { auth: 'ticket', fetch: withoutTickets });
    await loggedIn(client);
    await expect(client.connect()).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });

  it('explains a refused handshake by asking the HTTP API about the token', async () => {
    const client = clientFor(system, { createSocket: nodeSocket('https://evil.example') });
    await loggedIn(client);
    const err = await client.connect().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'forbidden' });
    expect((err as Error).message).toMatch(/origin/);
    expect(client.state).toBe('closed');
  });

  it('joins, sends and receives: both members get the message once, the sender an ack', async () => {
    const alice = clientFor(system);
    const bob = clientFor(system);
    const aliceName = await loggedIn(alice, 'alice');
    const bobName = await loggedIn(bob, 'bob');
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.join('chat-1');
    const joinedSeen = nextEvent(alice, 'member_joined');
    await bob.join('chat-1');
    expect(await joinedSeen).toEqual({ type: 'member_joined', room: 'chat-1', username: bobName });
    expect(await bob.presence('chat-1')).toEqual([aliceName, bobName].sort());

    const aliceGot = record(alice, 'message');
    const bobGets = nextEvent(bob, 'message');
    const ack = await alice.send('chat-1', 'hello bob');
    const message = await bobGets;
    expect(message).toMatchObject({ room: 'chat-1', from: aliceName, text: 'hello bob' });
    expect(ack.messageId).toBe(message.messageId);
    await sleep(50);
    expect(aliceGot.map((m) => m.messageId)).toEqual([message.messageId]);

    const history = clientFor(system);
    await loggedIn(history);
    await history.connect();
    const joined = await history.join('chat-1', { history: 5 });
    expect(joined.history.map((m) => m.text)).toEqual(['hello bob']);

    const left = nextEvent(alice, 'member_left');
    await bob.leave('chat-1');
    expect(await left).toMatchObject({ room: 'chat-1', username: bobName });
    expect(bob.rooms).toEqual([]);
  });

  it('rejects requests with the error frame code, and checks room names before sending', async () => {
    const client = clientFor(system);
    await loggedIn(client);
    await client.connect();
    await expect(client.send('not-joined', 'hi')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(client.send('lobby', 'x'.repeat(9000))).rejects.toMatchObject({ code: 'too_large' });
    await expect(client.join('no spaces')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('knows the room kinds: dm() with another user, data in and out, removed and access_changed from a grant', async () => {
    const alice = clientFor(system);
    const bob = clientFor(system);
    const aliceName = await loggedIn(alice);
    const bobName = await loggedIn(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    expect(alice.userRoom).toBe(`user:${aliceName}`);
    expect(alice.roles).toEqual(['user']);
    const dm = await alice.dm(bobName.toUpperCase());
    expect(dm.room).toBe(dmRoom(aliceName, bobName));
    await bob.dm(aliceName);
    const got = nextEvent(bob, 'message');
    await alice.send(dm.room, { data: { typing: true } });
    expect(await got).toMatchObject({ room: dm.room, from: aliceName, data: { typing: true } });
    expect(await got).not.toHaveProperty('text');

    const room = `private:client-${aliceName}`;
    const by = { username: 'test' };
    await putGrant(system.deps, by, room, aliceName, { access: 'member' });
    expect(await alice.join(room)).toMatchObject({ access: 'member' });
    const changed = nextEvent(alice, 'access_changed');
    await putGrant(system.deps, by, room, aliceName, { access: 'reader' });
    expect(await changed).toEqual({ type: 'access_changed', room, access: 'reader' });
    const removed = nextEvent(alice, 'removed');
    await deleteGrant(system.deps, by, room, aliceName);
    expect(await removed).toEqual({ type: 'removed', room, reason: 'access_revoked' });
    // Out for good: not rejoined after a reconnect.
    expect(alice.rooms).toEqual([dm.room]);
    await expect(alice.join('team:x')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('rejects requests while disconnected instead of queueing them', async () => {
    const client = clientFor(system);
    await loggedIn(client);
    await expect(client.ping()).rejects.toMatchObject({ code: 'not_connected' });
  });
});

describe('refresh before expiry', () => {
  it('refreshes over HTTP and on the socket, so the socket outlives the first token', async () => {
    const ttl = await startTestSystem(
      { ACCESS_TOKEN_TTL_S: '30', CLOCK_SKEW_S: '0', RATE_LIMIT_MAX: '1000' },
      new LiveClock(),
      {
        sweeperTimer: false,
      },
    );
    try {
      // Refresh 28 s before a 30 s expiry: every 2 s, so the test sees it quickly.
      const kept = clientFor(ttl, { refreshMarginS: 28 });
      const lapsed = clientFor(ttl, { autoRefresh: false, reconnect: false });
      await loggedIn(kept);
      await loggedIn(lapsed);
      await Promise.all([kept.connect(), lapsed.connect()]);
      const firstExp = (await kept.whoami()).exp;

      // Server time moves 25 s on; the next refresh then issues a token valid well past firstExp.
      ttl.clock.advance(25);
      const refreshed = await nextEvent(kept, 'token_refreshed', ({ exp }) => exp > firstExp + 20);
      ttl.clock.advance(10); // the first token is now past its exp, on the server's clock

      const closing = nextEvent(lapsed, 'closing');
      await ttl.sweep();
      expect(await closing).toEqual({ reason: 'token_expired' });
      await sleep(50);
      expect(lapsed.state).toBe('closed');

      expect(kept.state).toBe('open');
      const me = await kept.whoami();
      expect(me.exp).toBeGreaterThan(firstExp);
      expect(me.exp).toBeGreaterThanOrEqual(refreshed.exp);
      expect(ttl.audit.filter((l) => l.event === 'auth.refresh').length).toBeGreaterThanOrEqual(1);
    } finally {
      closeClients();
      await ttl.close();
    }
  });

  it('shares one refresh between concurrent callers (a refresh token is single-use)', async () => {
    const client = clientFor(system);
    await loggedIn(client);
    const tokens = record(client, 'token');
    await Promise.all([client.refresh(), client.refresh(), client.refresh()]);
    expect(tokens).toHaveLength(1);
    await client.refresh();
    expect(tokens).toHaveLength(2);
  });

  it('ends the session when the refresh token is refused', async () => {
    const client = clientFor(system);
    const username = await loggedIn(client);
    // Another holder spends the refresh token first: the family is revoked on reuse.
    const pair = await system.request('POST', '/auth/login', { body: { username, password: PASSWORD } });
    client.useTokens(pair.body as never);
    await system.request('POST', '/auth/refresh', { body: { refresh_token: pair.body.refresh_token } });
    const ended = nextEvent(client, 'session_ended');
    await expect(client.refresh()).rejects.toMatchObject({ code: 'invalid_token' });
    expect(await ended).toEqual({ reason: 'refresh_failed' });
    expect(client.accessToken).toBeUndefined();
  });
});

describe('reconnect', () => {
  it('reconnects after a server-side close, rejoins its rooms and delivers what it missed', async () => {
    const reader = clientFor(system);
    const writer = clientFor(system);
    const readerName = await loggedIn(reader, 'reader');
    await loggedIn(writer, 'writer');
    await Promise.all([reader.connect(), writer.connect()]);
    await reader.join('news');
    await writer.join('news');
    const reconnecting = nextEvent(reader, 'reconnecting');
    const reconnected = nextEvent(reader, 'connected');
    const received = record(reader, 'message');

    const [id] = await connectionIds(system, readerName);
    await system.deps.api?.close(id ?? '');
    expect((await reconnecting).attempt).toBe(1);
    await writer.send('news', 'while you were away');
    expect(await reconnected).toEqual({ reconnected: true });

    expect(reader.state).toBe('open');
    expect(received.map((m) => m.text)).toContain('while you were away');
    const live = nextEvent(reader, 'message');
    await writer.send('news', 'and now');
    expect((await live).text).toBe('and now');
    expect(await connectionIds(system, readerName)).toHaveLength(1);
  });

  it('stops tracking a room whose rejoin is refused (its grant deleted while the socket was down)', async () => {
    const client = clientFor(system, { reconnectBaseMs: 60_000, reconnectMaxMs: 60_000 });
    const name = await loggedIn(client, 'regrant');
    await client.connect();
    const room = `private:rejoin-${name}`;
    const by = { username: 'test' };
    await putGrant(system.deps, by, room, name, { access: 'member' });
    await client.join(room);
    await client.join('lobby');
    const reconnecting = nextEvent(client, 'reconnecting');
    const [id] = await connectionIds(system, name);
    await system.deps.api?.close(id ?? '');
    await reconnecting;
    await deleteGrant(system.deps, by, room, name);
    const errors = record(client, 'error');
    const connected = nextEvent(client, 'connected');
    client.reconnectNow();
    expect(await connected).toEqual({ reconnected: true });
    expect(errors.map((e) => e.code)).toEqual(['forbidden']);
    expect(client.rooms).not.toContain(room);
    expect(client.rooms).toContain('lobby');
    // Not asked again on the next reconnect.
    const again = nextEvent(client, 'reconnecting');
    const [next] = await connectionIds(system, name);
    await system.deps.api?.close(next ?? '');
    await again;
    const reconnected = nextEvent(client, 'connected');
    client.reconnectNow();
    await reconnected;
    expect(errors.map((e) => e.code)).toEqual(['forbidden']);
  });

  it('holds a message sent the moment a new socket opens until its rooms are rejoined, then delivers it', async () => {
    const sender = clientFor(system);
    const reader = clientFor(system);
    const senderName = await loggedIn(sender, 'eager');
    await loggedIn(reader, 'watcher');
    await Promise.all([sender.connect(), reader.connect()]);
    await sender.join('eager-room');
    await reader.join('eager-room');
    const received = record(reader, 'message');
    // Sent as soon as the state says open, before the rejoin's join frame has been answered: a
    // message on the new socket ahead of its join would be refused (not a member yet).
    let sent: Promise<unknown> | undefined;
    let dropped = false;
    sender.on('state', ({ state }) => {
      if (state === 'reconnecting') dropped = true;
      if (state === 'open' && dropped) sent ??= sender.send('eager-room', 'right away');
    });
    const reconnected = nextEvent(sender, 'connected');
    const [id] = await connectionIds(system, senderName);
    await system.deps.api?.close(id ?? '');
    await reconnected;
    expect(sent).toBeDefined();
    await expect(sent).resolves.toMatchObject({ messageId: expect.any(String), seq: expect.any(Number) });
    for (let i = 0; i < 100 && !received.some((m) => m.text === 'right away'); i++) await sleep(20);
    expect(received.filter((m) => m.text === 'right away')).toHaveLength(1);
  });

  it('reconnects at once on reconnectNow() instead of waiting out a long backoff', async () => {
    const client = clientFor(system, { reconnectBaseMs: 60_000, reconnectMaxMs: 60_000 });
    const name = await loggedIn(client, 'eager');
    await client.connect();
    const reconnecting = nextEvent(client, 'reconnecting');
    const [id] = await connectionIds(system, name);
    await system.deps.api?.close(id ?? '');
    expect((await reconnecting).delayMs).toBeGreaterThanOrEqual(30_000);
    const started = Date.now();
    client.reconnectNow();
    expect(await nextEvent(client, 'connected')).toEqual({ reconnected: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    client.reconnectNow(); // open: nothing to do
    expect(client.state).toBe('open');
  });

  it('backs off further each time a new socket is cut right after opening', async () => {
    const client = clientFor(system, { reconnectBaseMs: 20, reconnectMaxMs: 80, random: () => 1 });
    const username = await loggedIn(client);
    await client.connect();
    const delays: number[] = [];
    // Every new handshake is cut as soon as it opens, as a flapping network would.
    client.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    const cut = client.on('state', async ({ state }) => {
      if (state !== 'open' || delays.length >= 4) return;
      const ids = await connectionIds(system, username);
      for (const id of ids) await system.deps.api?.close(id);
    });
    const [id] = await connectionIds(system, username);
    await system.deps.api?.close(id ?? '');
    await nextEvent(client, 'connected', () => delays.length >= 4, 5000);
    cut();
    expect(delays.slice(0, 4)).toEqual([20, 40, 80, 80]);
  });

  it('does not reconnect after logout, and the server forgets the socket', async () => {
    const client = clientFor(system);
    const username = await loggedIn(client);
    await client.connect();
    const ended = nextEvent(client, 'session_ended');
    const reconnecting = record(client, 'reconnecting');
    await client.logout();
    expect(await ended).toEqual({ reason: 'logout' });
    expect(client.state).toBe('closed');
    await sleep(200);
    expect(reconnecting).toEqual([]);
    expect(await connectionIds(system, username)).toEqual([]);
  });

  it('stops with session_ended after closing: token_revoked (a logout elsewhere)', async () => {
    const client = clientFor(system);
    await loggedIn(client);
    await client.connect();
    const closing = nextEvent(client, 'closing');
    const ended = nextEvent(client, 'session_ended');
    const reconnecting = record(client, 'reconnecting');
    await client.http.logout(client.accessToken ?? '');
    expect(await closing).toEqual({ reason: 'token_revoked' });
    expect(await ended).toEqual({ reason: 'token_revoked' });
    await sleep(200);
    expect(reconnecting).toEqual([]);
    expect(client.state).toBe('closed');
  });
});

describe('payload encryption against the real server', () => {
  it('with messageEncryption on, chats over JWE frames both ways and still matches replies and errors', async () => {
    const enc = await startTestSystem({ MESSAGE_ENCRYPTION: 'true', RATE_LIMIT_MAX: '1000' }, undefined, {
      sweeperTimer: false,
    });
    try {
      const wire: string[] = [];
      const socket = nodeSocket();
      const tapped = (url: string, protocols: string[]) => {
        const ws = socket(url, protocols);
        const send = ws.send.bind(ws);
        ws.send = (data: string) => {
          wire.push(data);
          send(data);
        };
        return ws;
      };
      const alice = clientFor(enc, { createSocket: tapped });
      const bob = clientFor(enc);
      await loggedIn(alice, 'alice');
      await loggedIn(bob, 'bob');
      expect(alice.encrypted).toBe(true);
      await Promise.all([alice.connect(), bob.connect()]);
      await alice.join('secret-room');
      await bob.join('secret-room');
      const got = nextEvent(bob, 'message');
      await alice.send('secret-room', 'for your eyes only');
      expect(await got).toMatchObject({ from: alice.username, text: 'for your eyes only' });
      await expect(alice.send('elsewhere', 'x')).rejects.toMatchObject({ code: 'forbidden' });
      expect(wire.length).toBeGreaterThanOrEqual(3);
      for (const frame of wire)
        expect(JSON.parse(frame)).toMatchObject({ type: 'encrypted', id: expect.any(String) });
      expect(wire.join()).not.toContain('for your eyes only');
    } finally {
      closeClients();
      await enc.close();
    }
  });
});

describe('blocked', () => {
  it('stops with session_ended after closing: blocked, and does not knock again', async () => {
    const client = clientFor(system);
    const username = await loggedIn(client);
    await client.connect();
    const ended = nextEvent(client, 'session_ended');
    const reconnecting = record(client, 'reconnecting');
    await closeUserSockets(system.deps, username, 'blocked');
    expect(await ended).toEqual({ reason: 'blocked' });
    await sleep(200);
    expect(reconnecting).toEqual([]);
    expect(client.state).toBe('closed');
    expect(client.accessToken).toBeUndefined();
  });
});

describe('keep-alive', () => {
  it('pings after the interval without traffic, and not while the client is sending', async () => {
    const client = clientFor(system, { pingIntervalMs: 150 });
    await loggedIn(client);
    await client.connect();
    const frames = record(client, 'frame');
    await sleep(250);
    expect(frames.filter((f) => f.type === 'pong')).toHaveLength(1);
    for (let i = 0; i < 3; i++) {
      await client.whoami();
      await sleep(80);
    }
    expect(frames.filter((f) => f.type === 'pong')).toHaveLength(1);
  });
});

describe('message dedupe', () => {
  it('emits each message id once', async () => {
    const client = clientFor(system);
    await loggedIn(client);
    await client.connect();
    await client.join('dedupe');
    const got: ChatMessage[] = record(client, 'message');
    await client.send('dedupe', 'once');
    await sleep(50);
    expect(got.map((m) => m.text)).toEqual(['once']);
  });
});
