import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  loginWithRoles,
  PASSWORD,
  registerAndLogin,
  startTestSystem,
  type TestSystem,
} from '../kit/system.ts';
import { is, openClient, refusalStatus, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
let admin: string;
let publisher: string;

beforeAll(async () => {
  system = await startTestSystem({ RATE_LIMIT_MAX: '1000' }, undefined, { sweeperTimer: false });
  admin = await loginWithRoles(system, 'root', ['admin']);
  publisher = await loginWithRoles(system, 'announcer', ['publisher']);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

const socket = (token: string) => openClient(system.wsUrl, { protocols: ['jwt', token] });

describe('admin authorization', () => {
  const routes: [string, string, unknown?][] = [
    ['POST', '/admin/users/someone/block', { duration_s: 60 }],
    ['DELETE', '/admin/users/someone/block'],
    ['POST', '/admin/ips/10.0.0.1/block', { duration_s: 60 }],
    ['DELETE', '/admin/ips/10.0.0.1/block'],
    ['POST', '/admin/users/someone/revoke'],
    ['GET', '/admin/connections'],
    ['POST', '/admin/rooms/lobby/messages', { text: 'hi' }],
  ];
  for (const [method, path, body] of routes) {
    it(`${method} ${path}: 401 without a token, 403 for a plain user`, async () => {
      expect((await system.request(method, path, { body })).status).toBe(401);
      const user = await registerAndLogin(
        system,
        `plain_${method.toLowerCase()}_${path.length}_${Math.random().toString(36).slice(2, 6)}`,
      );
      const res = await system.request(method, path, { body, token: user.access_token });
      expect(res.status).toBe(403);
      expect(res.body.error).toBe('forbidden');
    });
  }

  it('labels each denial with the route key that was called, method included', async () => {
    const user = await registerAndLogin(system, 'plain_labels');
    for (const method of ['POST', 'DELETE']) {
      await system.request(method, '/admin/users/someone/block', {
        body: { duration_s: 60 },
        token: user.access_token,
      });
      expect(system.audit).toContainEqual(
        expect.objectContaining({
          event: 'auth.denied',
          route: `${method} /admin/users/{username}/block`,
          reason: 'forbidden',
        }),
      );
    }
  });
});

describe('POST/DELETE /admin/users/{username}/block', () => {
  it('blocks a user: sockets get closing "blocked" and close, logins and handshakes get 403, until unblocked', async () => {
    const victim = await registerAndLogin(system, 'blockee');
    const other = await registerAndLogin(system, 'bystander');
    const [s1, s2, s3] = await Promise.all([
      socket(victim.access_token),
      socket(victim.access_token),
      socket(other.access_token),
    ]);
    const res = await system.request('POST', '/admin/users/Blockee/block', {
      token: admin,
      body: { duration_s: 600, reason: 'spam' },
    });
    expect(res.status).toBe(204);
    for (const s of [s1, s2]) {
      expect(await s?.next(is('closing'))).toEqual({ type: 'closing', reason: 'blocked' });
      await s?.closed;
    }
    expect(await s3?.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', victim.access_token] })).toBe(403);
    const login = await system.request('POST', '/auth/login', {
      body: { username: 'blockee', password: PASSWORD },
    });
    expect(login.status).toBe(403);
    expect(system.audit).toContainEqual(
      expect.objectContaining({
        event: 'user.blocked',
        username: 'blockee',
        reason: 'spam',
        by: 'root',
        durationS: 600,
      }),
    );

    expect((await system.request('DELETE', '/admin/users/blockee/block', { token: admin })).status).toBe(204);
    expect(system.audit).toContainEqual(
      expect.objectContaining({ event: 'user.unblocked', username: 'blockee' }),
    );
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'blockee', password: PASSWORD } }))
        .status,
    ).toBe(200);
    const again = await socket(victim.access_token);
    expect(await again.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('refuses the refresh of a blocked user with 403 and ends the family, without a reuse alarm on retry', async () => {
    const pair = await registerAndLogin(system, 'blocked_refresher');
    await system.request('POST', '/admin/users/blocked_refresher/block', {
      token: admin,
      body: { duration_s: 60 },
    });
    const res = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: pair.refresh_token },
    });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('forbidden');
    await system.request('DELETE', '/admin/users/blocked_refresher/block', { token: admin });
    const retry = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: pair.refresh_token },
    });
    expect(retry.status).toBe(401);
    expect(
      system.audit.some((l) => l.event === 'auth.refresh_reuse' && l.username === 'blocked_refresher'),
    ).toBe(false);
  });

  it('ends a block after duration_s', async () => {
    await registerAndLogin(system, 'short_block');
    await system.request('POST', '/admin/users/short_block/block', { token: admin, body: { duration_s: 5 } });
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'short_block', password: PASSWORD } }))
        .status,
    ).toBe(403);
    system.clock.advance(6);
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'short_block', password: PASSWORD } }))
        .status,
    ).toBe(200);
  });

  it('answers 404 for an unknown user and 400 for a bad duration', async () => {
    expect(
      (
        await system.request('POST', '/admin/users/ghost_user/block', {
          token: admin,
          body: { duration_s: 60 },
        })
      ).status,
    ).toBe(404);
    for (const body of [
      {},
      { duration_s: 0 },
      { duration_s: 1.5 },
      { duration_s: '60' },
      { duration_s: 60, reason: 7 },
    ]) {
      const res = await system.request('POST', '/admin/users/root/block', { token: admin, body });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    }
  });
});

describe('POST/DELETE /admin/ips/{ip}/block', () => {
  it('refuses handshakes and logins from a blocked IP with 403, and lets them in after the unblock', async () => {
    const user = await registerAndLogin(system, 'ip_user');
    expect(
      (await system.request('POST', '/admin/ips/127.0.0.1/block', { token: admin, body: { duration_s: 60 } }))
        .status,
    ).toBe(204);
    expect(await refusalStatus(system.wsUrl, { protocols: ['jwt', user.access_token] })).toBe(403);
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'ip_user', password: PASSWORD } }))
        .status,
    ).toBe(403);
    // The admin is on the same address: unblocking must still work, so blocks apply to logins and sockets only.
    const unblock = await system.request('DELETE', '/admin/ips/127.0.0.1/block', { token: admin });
    expect(unblock.status).toBe(204);
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'ip_user', password: PASSWORD } }))
        .status,
    ).toBe(200);
  });

  it('answers 400 for a malformed IP', async () => {
    for (const ip of ['999.1.1.1', 'not-an-ip', '10.0.0.1%25eth0', '1.2.3']) {
      const res = await system.request('POST', `/admin/ips/${ip}/block`, {
        token: admin,
        body: { duration_s: 60 },
      });
      expect(res.status).toBe(400);
    }
  });
});

describe('POST /admin/users/{username}/revoke', () => {
  it('refuses every token issued before now, closes the sockets with token_revoked, and lets a new login in', async () => {
    const user = await registerAndLogin(system, 'revokee');
    const s = await socket(user.access_token);
    expect((await system.request('POST', '/admin/users/revokee/revoke', { token: admin })).status).toBe(204);
    expect(await s.next(is('closing'))).toEqual({ type: 'closing', reason: 'token_revoked' });
    expect((await system.request('GET', '/auth/me', { token: user.access_token })).status).toBe(401);
    expect(
      (await system.request('POST', '/auth/refresh', { body: { refresh_token: user.refresh_token } })).status,
    ).toBe(401);
    system.clock.advance(1);
    const fresh = await system.request('POST', '/auth/login', {
      body: { username: 'revokee', password: PASSWORD },
    });
    expect(
      (await system.request('GET', '/auth/me', { token: fresh.body.access_token as string })).status,
    ).toBe(200);
    expect((await system.request('POST', '/admin/users/nobody_x/revoke', { token: admin })).status).toBe(404);
  });
});

describe('GET /admin/connections', () => {
  it('lists open sockets with user, ip, time and rooms', async () => {
    const user = await registerAndLogin(system, 'lister');
    const s = await socket(user.access_token);
    await s.request({ type: 'join', room: 'ops' });
    const res = await system.request('GET', '/admin/connections', { token: admin });
    expect(res.status).toBe(200);
    const mine = (res.body.connections as Record<string, unknown>[]).filter((c) => c.username === 'lister');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      ip: '127.0.0.1',
      rooms: ['ops', 'user:lister'],
      connectedAt: expect.any(Number),
    });
    expect(typeof mine[0]?.connectionId).toBe('string');
  });
});

describe('POST /admin/rooms/{room}/messages', () => {
  it('delivers to the room members as a message from the caller, for publishers and admins', async () => {
    const member = await registerAndLogin(system, 'listener');
    const outsider = await registerAndLogin(system, 'outsider');
    const s = await socket(member.access_token);
    const o = await socket(outsider.access_token);
    await s.request({ type: 'join', room: 'news' });
    const res = await system.request('POST', '/admin/rooms/news/messages', {
      token: publisher,
      body: { text: 'breaking' },
    });
    expect(res.status).toBe(202);
    expect(await s.next(is('message'))).toMatchObject({
      type: 'message',
      room: 'news',
      from: 'announcer',
      text: 'breaking',
    });
    await o.expectNone(is('message'), 200);
    expect(
      (
        await system.request('POST', '/admin/rooms/news/messages', {
          token: admin,
          body: { text: 'from root' },
        })
      ).status,
    ).toBe(202);
    expect(await s.next(is('message'))).toMatchObject({ from: 'root', text: 'from root' });
    // It is kept in the room's history too.
    const late = await socket(outsider.access_token);
    const joined = await late.request({ type: 'join', room: 'news', history: 10 });
    expect((joined.history as { text: string }[]).map((m) => m.text)).toEqual(['breaking', 'from root']);
  });

  it('answers 400 for a bad room or text', async () => {
    for (const [room, body] of [
      ['bad room!', { text: 'x' }],
      ['news', {}],
      ['news', { text: '' }],
      ['news', { text: 'x'.repeat(9000) }],
    ] as const) {
      const res = await system.request('POST', `/admin/rooms/${encodeURIComponent(room)}/messages`, {
        token: publisher,
        body,
      });
      expect(res.status).toBe(400);
    }
  });
});

describe('POST /auth/ws-ticket', () => {
  it('issues a single-use ticket that opens one socket and is never an access token', async () => {
    const user = await registerAndLogin(system, 'ticketer');
    const res = await system.request('POST', '/auth/ws-ticket', { token: user.access_token });
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBe(30);
    const ticket = res.body.ticket as string;
    const s = await openClient(system.wsUrl, { query: { ticket } });
    expect(await s.request({ type: 'whoami' })).toMatchObject({ type: 'identity', username: 'ticketer' });
    expect(await refusalStatus(system.wsUrl, { query: { ticket } })).toBe(401);
    expect((await system.request('GET', '/auth/me', { token: ticket })).status).toBe(401);
    expect((await system.request('POST', '/auth/ws-ticket')).status).toBe(401);
  });

  it('refuses a ticket after 30 seconds', async () => {
    const user = await registerAndLogin(system, 'late_ticket');
    const { ticket } = (await system.request('POST', '/auth/ws-ticket', { token: user.access_token }))
      .body as { ticket: string };
    system.clock.advance(61);
    expect(await refusalStatus(system.wsUrl, { query: { ticket } })).toBe(401);
  });
});
