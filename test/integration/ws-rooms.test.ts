import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { socketsOfUser } from '../../lambdas/core/socket-rows.ts';
import { loginWithRoles, registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';
import { type Client, type Frame, is, openClient, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const tokens: Record<string, string> = {};
const USERS = ['ann', 'bob', 'cyd', 'dee'] as const;
type User = (typeof USERS)[number] | 'herald' | 'root';

beforeAll(async () => {
  system = await startTestSystem({ RATE_LIMIT_MAX: '100000' }, undefined, { sweeperTimer: false });
  for (const u of ['ann', 'bob', 'cyd', 'dee']) tokens[u] = (await registerAndLogin(system, u)).access_token;
  tokens.herald = await loginWithRoles(system, 'herald', ['publisher']);
  tokens.root = await loginWithRoles(system, 'root', ['admin']);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

let rooms = 0;
const fresh = (kind: string) => `${kind}room-${++rooms}`;
const connect = (user: User): Promise<Client> =>
  openClient(system.wsUrl, { protocols: ['jwt', tokens[user] ?? ''] });

const grant = (room: string, username: string, access: unknown, token = tokens.herald) =>
  system.request('PUT', `/admin/rooms/${encodeURIComponent(room)}/grants/${username}`, {
    token,
    body: { access },
  });
const revoke = (room: string, username: string, token = tokens.herald) =>
  system.request('DELETE', `/admin/rooms/${encodeURIComponent(room)}/grants/${username}`, { token });
const publish = (room: string, body: Record<string, unknown>, token = tokens.herald) =>
  system.request('POST', `/admin/rooms/${encodeURIComponent(room)}/messages`, { token, body });

async function expectForbidden(c: Client, frame: Frame): Promise<void> {
  expect(await c.request(frame)).toMatchObject({ type: 'error', code: 'forbidden' });
}

describe('user: rooms', () => {
  it("puts every socket of a user in its user: room from the moment it opens, so one publish reaches all of the user's devices", async () => {
    const [phone, laptop, other] = await Promise.all([connect('ann'), connect('ann'), connect('bob')]);
    const res = await publish('user:ann', { text: 'your order shipped', data: { orderId: 42 } });
    expect(res.status).toBe(202);
    for (const s of [phone, laptop]) {
      expect(await s.next(is('message'))).toMatchObject({
        room: 'user:ann',
        from: 'herald',
        text: 'your order shipped',
        data: { orderId: 42 },
      });
    }
    await other.expectNone(is('message'), 200);
    // Its sockets may speak in it too, and join it (already in: no second member_joined).
    expect(await phone.request({ type: 'join', room: 'user:ann' })).toMatchObject({
      type: 'joined',
      members: ['ann'],
    });
    expect(await laptop.request({ type: 'message', room: 'user:ann', text: 'note to self' })).toMatchObject({
      type: 'ack',
    });
    await phone.next(is('message', { text: 'note to self' }));
    await laptop.expectNone(is('member_joined'), 100);
  });

  it("refuses another user's user: room, and says nothing in it when a socket of its user closes", async () => {
    const [ann, ann2, bob] = await Promise.all([connect('ann'), connect('ann'), connect('bob')]);
    await expectForbidden(bob, { type: 'join', room: 'user:ann' });
    await expectForbidden(bob, { type: 'message', room: 'user:ann', text: 'hi' });
    await expectForbidden(bob, { type: 'presence', room: 'user:ann' });
    expect(await bob.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    await ann2.close();
    await ann.expectNone(is('member_left'), 200);
    // Its membership went with its row: the room holds exactly the user's open sockets.
    const ids = async () => ({
      rows: (await socketsOfUser(system.deps, 'ann')).map((r) => r.connectionId).sort(),
      members: (await roomMembers(system.deps, 'user:ann', { consistent: true }))
        .map((m) => m.connectionId)
        .sort(),
    });
    let now = await ids();
    for (let i = 0; i < 50 && (now.rows.length !== 1 || now.members.join() !== now.rows.join()); i++) {
      await new Promise((r) => setTimeout(r, 50));
      now = await ids();
    }
    expect(now.members).toEqual(now.rows);
    expect(now.rows).toHaveLength(1);
  });
});

describe('dm: rooms', () => {
  it('lets its two users alone join and talk', async () => {
    const [ann, bob, cy] = await Promise.all([connect('ann'), connect('bob'), connect('cyd')]);
    expect(await ann.request({ type: 'join', room: 'dm:ann+bob' })).toMatchObject({ type: 'joined' });
    expect(await bob.request({ type: 'join', room: 'dm:ann+bob' })).toMatchObject({
      members: ['ann', 'bob'],
    });
    await ann.next(is('member_joined', { username: 'bob' }));
    await expectForbidden(cy, { type: 'join', room: 'dm:ann+bob' });
    await ann.request({ type: 'message', room: 'dm:ann+bob', text: 'psst' });
    await bob.next(is('message', { text: 'psst', from: 'ann' }));
    await cy.expectNone(is('message'), 200);
  });
});

describe('private: rooms and grants', () => {
  it('refuses a user without a grant, lets members post and readers only read', async () => {
    const room = fresh('private:');
    const [ann, bob, cy] = await Promise.all([connect('ann'), connect('bob'), connect('cyd')]);
    await expectForbidden(ann, { type: 'join', room });
    expect((await grant(room, 'ann', 'member')).status).toBe(204);
    expect((await grant(room, 'Bob', 'reader')).status).toBe(204);
    expect(await ann.request({ type: 'join', room })).toMatchObject({ type: 'joined', access: 'member' });
    expect(await bob.request({ type: 'join', room })).toMatchObject({ type: 'joined', access: 'reader' });
    await expectForbidden(cy, { type: 'join', room });
    await ann.request({ type: 'message', room, text: 'members only' });
    await bob.next(is('message', { text: 'members only' }));
    expect(await bob.request({ type: 'message', room, text: 'can I?' })).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/read-only/),
    });
    await ann.expectNone(is('message', { text: 'can I?' }), 200);
    const list = await system.request('GET', `/admin/rooms/${room}/grants`, { token: tokens.root });
    expect(list.status).toBe(200);
    expect(list.body.grants).toEqual([
      { username: 'ann', access: 'member', grantedAt: expect.any(Number), by: 'herald' },
      { username: 'bob', access: 'reader', grantedAt: expect.any(Number), by: 'herald' },
    ]);
    expect(system.audit).toContainEqual(
      expect.objectContaining({
        event: 'room.granted',
        username: 'bob',
        room,
        access: 'reader',
        by: 'herald',
      }),
    );
  });

  it('takes a revoked user out of the room at once: removed to each of its sockets, member_left to the rest', async () => {
    const room = fresh('private:');
    await grant(room, 'ann', 'member');
    await grant(room, 'bob', 'member');
    const [ann, bob1, bob2] = await Promise.all([connect('ann'), connect('bob'), connect('bob')]);
    for (const c of [ann, bob1, bob2]) await c.request({ type: 'join', room });
    expect((await revoke(room, 'bob')).status).toBe(204);
    for (const b of [bob1, bob2]) {
      expect(await b.next(is('removed'))).toEqual({ type: 'removed', room, reason: 'access_revoked' });
    }
    expect(await ann.next(is('member_left', { username: 'bob' }))).toBeDefined();
    await ann.request({ type: 'message', room, text: 'after' });
    await Promise.all([bob1, bob2].map((b) => b.expectNone(is('message', { text: 'after' }), 200)));
    await expectForbidden(bob1, { type: 'presence', room });
    await expectForbidden(bob1, { type: 'message', room, text: 'still here?' });
    await expectForbidden(bob2, { type: 'join', room });
    expect(await bob1.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await ann.request({ type: 'presence', room })).toMatchObject({ members: ['ann'] });
    expect(system.audit).toContainEqual(
      expect.objectContaining({ event: 'room.grant_revoked', username: 'bob', room, by: 'herald', count: 2 }),
    );
    expect((await revoke(room, 'bob')).status).toBe(404);
  });

  it('tells the sockets of a grant lowered to reader, and refuses their posts from then on', async () => {
    const room = fresh('private:');
    await grant(room, 'ann', 'member');
    const ann = await connect('ann');
    await ann.request({ type: 'join', room });
    await ann.request({ type: 'message', room, text: 'while member' });
    expect((await grant(room, 'ann', 'reader')).status).toBe(204);
    expect(await ann.next(is('access_changed'))).toEqual({ type: 'access_changed', room, access: 'reader' });
    await expectForbidden(ann, { type: 'message', room, text: 'now?' });
    expect(await ann.request({ type: 'presence', room })).toMatchObject({ members: ['ann'] });
    await grant(room, 'ann', 'member');
    expect(await ann.next(is('access_changed'))).toMatchObject({ access: 'member' });
    expect(await ann.request({ type: 'message', room, text: 'again' })).toMatchObject({ type: 'ack' });
  });

  it('answers 400 for a room that is not private: or a bad access, 404 for an unknown user, 403 for a plain user', async () => {
    expect((await grant('lobby', 'ann', 'member')).status).toBe(400);
    expect((await grant('broadcast:news', 'ann', 'member')).status).toBe(400);
    expect((await grant('private:x', 'ann', 'owner')).status).toBe(400);
    expect((await grant('private:x', 'ann', undefined)).status).toBe(400);
    expect((await grant('private:bad name', 'ann', 'member')).status).toBe(400);
    expect((await grant('private:x', 'nobody_here', 'member')).status).toBe(404);
    expect((await grant('private:x', 'ann', 'member', tokens.ann)).status).toBe(403);
    expect((await revoke('private:x', 'ann', tokens.ann)).status).toBe(403);
    expect((await system.request('GET', '/admin/rooms/private:x/grants', { token: tokens.ann })).status).toBe(
      403,
    );
    expect((await system.request('GET', '/admin/rooms/private:x/grants')).status).toBe(401);
    expect((await revoke('private:never-granted', 'ann')).status).toBe(404);
  });

  /** Runs `action` once, right after the first store call matching `when` answers (before its caller goes on). */
  function after(
    when: (command: string, input: Record<string, unknown>) => boolean,
    action: () => Promise<unknown>,
  ) {
    let armed = true;
    const name = `after${Math.random().toString(36).slice(2)}`;
    system.deps.db.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (armed && when(context.commandName ?? '', args.input as Record<string, unknown>)) {
          armed = false;
          await action();
        }
        return out;
      },
      { step: 'initialize', name },
    );
    return () => system.deps.db.middlewareStack.remove(name);
  }
  const readsGrants = (command: string, input: Record<string, unknown>) =>
    command === 'BatchGetItemCommand' &&
    Object.keys((input.RequestItems as Record<string, unknown>) ?? {}).includes(system.deps.tables.grants);
  const writesMembership = (room: string) => (command: string, input: Record<string, unknown>) =>
    command === 'PutItemCommand' &&
    (input.Item as Record<string, { S?: string }> | undefined)?.pk?.S === `room#${room}`;

  for (const [moment, when] of [
    ['between the join reading the grant and storing its membership', () => readsGrants],
    ['between the join storing its membership and its row', writesMembership],
  ] as const) {
    it(`refuses a join when the revocation lands ${moment}`, async () => {
      const room = fresh('private:');
      const ann = await connect('ann');
      await grant(room, 'ann', 'member');
      await ann.request({ type: 'join', room });
      await grant(room, 'bob', 'member');
      const bob = await connect('bob');
      let revoked: Promise<unknown> = Promise.resolve();
      const detach = after(when(room), () => {
        revoked = revoke(room, 'bob');
        return revoked;
      });
      try {
        const reply = await bob.request({ type: 'join', room });
        expect(reply).toMatchObject({ type: 'error', code: 'forbidden' });
      } finally {
        detach();
      }
      await revoked;
      expect((await roomMembers(system.deps, room, { consistent: true })).map((m) => m.username)).toEqual([
        'ann',
      ]);
      expect((await socketsOfUser(system.deps, 'bob')).flatMap((c) => c.rooms)).not.toContain(room);
      await ann.request({ type: 'message', room, text: 'secret' });
      await bob.expectNone(is('message', { text: 'secret' }), 100);
      await expectForbidden(bob, { type: 'presence', room });
    });
  }

  it('leaves no socket in the room when a revocation races a join of the same user', async () => {
    const room = fresh('private:');
    const ann = await connect('ann');
    await grant(room, 'ann', 'member');
    await ann.request({ type: 'join', room });
    for (let round = 0; round < 12; round++) {
      await grant(room, 'bob', 'member');
      const bob = await connect('bob');
      const [reply, res] = await Promise.all([
        bob.request({ type: 'join', room }),
        // Staggered a little, so the revocation lands before, inside and after the join.
        new Promise((r) => setTimeout(r, round % 4)).then(() => revoke(room, 'bob')),
      ]);
      expect(res.status).toBe(204);
      if (reply.type === 'joined') await bob.next(is('removed', { room }));
      else expect(reply).toMatchObject({ type: 'error', code: 'forbidden' });
      const members = await roomMembers(system.deps, room, { consistent: true });
      expect(members.map((m) => m.username)).toEqual(['ann']);
      await ann.request({ type: 'message', room, text: `round ${round}` });
      await bob.expectNone(is('message', { text: `round ${round}` }), 50);
      await expectForbidden(bob, { type: 'presence', room });
      // With a grant again, the same socket joins and hears the room.
      await grant(room, 'bob', 'member');
      await bob.request({ type: 'join', room });
      await ann.request({ type: 'message', room, text: `back ${round}` });
      await bob.next(is('message', { text: `back ${round}` }));
      await revoke(room, 'bob');
      await bob.next(is('removed'));
      await bob.close();
    }
  }, 60_000);
});

describe('broadcast: rooms', () => {
  it('lets anyone listen and only admins and publishers speak, over the socket and HTTP', async () => {
    const room = fresh('broadcast:');
    const [ann, herald] = await Promise.all([connect('ann'), connect('herald')]);
    await ann.request({ type: 'join', room });
    await herald.request({ type: 'join', room });
    await expectForbidden(ann, { type: 'message', room, text: 'me too' });
    expect(await herald.request({ type: 'message', room, text: 'hear ye' })).toMatchObject({ type: 'ack' });
    await ann.next(is('message', { text: 'hear ye', from: 'herald' }));
    expect((await publish(room, { text: 'from root' }, tokens.root)).status).toBe(202);
    await ann.next(is('message', { text: 'from root', from: 'root' }));
    expect((await publish(room, { text: 'x' }, tokens.ann)).status).toBe(403);
  });
});

describe('a user trying every room it should not reach', () => {
  it('gets forbidden or bad_request for each, audited, with its socket left open', async () => {
    const secret = fresh('private:');
    const reading = fresh('private:');
    await grant(reading, 'dee', 'reader');
    const dee = await connect('dee');
    await dee.request({ type: 'join', room: reading });
    await dee.request({ type: 'join', room: 'broadcast:news' });
    const forbidden: Frame[] = [
      { type: 'join', room: 'user:ann' },
      { type: 'message', room: 'user:ann', text: 'x' },
      { type: 'join', room: 'dm:ann+bob' },
      { type: 'message', room: 'dm:ann+bob', text: 'x' },
      { type: 'join', room: secret },
      { type: 'presence', room: secret },
      { type: 'message', room: secret, text: 'x' },
      { type: 'message', room: reading, text: 'x' },
      { type: 'message', room: reading, data: { x: 1 } },
      { type: 'message', room: 'broadcast:news', text: 'x' },
      { type: 'message', room: 'not-joined', text: 'x' },
    ];
    const malformed: Frame[] = [
      { type: 'join', room: 'team:alpha' },
      { type: 'join', room: 'User:dee' },
      { type: 'join', room: 'user:Dee' },
      { type: 'join', room: 'user:' },
      { type: 'join', room: 'dm:bob+ann' },
      { type: 'join', room: 'dm:dee+dee' },
      { type: 'join', room: 'dm:dee' },
      { type: 'join', room: 'dm:ann+bob+dee' },
      { type: 'join', room: 'private:' },
      { type: 'join', room: 'private:a b' },
      { type: 'join', room: 'broadcast:x:y' },
      { type: 'join', room: ':lobby' },
      { type: 'join', room: 'private:'.padEnd(80, 'x') },
      { type: 'message', room: 'lobby' },
      { type: 'message', room: 'lobby', text: '' },
    ];
    for (const frame of forbidden) {
      expect(await dee.request(frame), JSON.stringify(frame)).toMatchObject({
        type: 'error',
        code: 'forbidden',
      });
    }
    for (const frame of malformed) {
      expect(await dee.request(frame), JSON.stringify(frame)).toMatchObject({
        type: 'error',
        code: 'bad_request',
      });
    }
    expect(await dee.request({ type: 'whoami' })).toMatchObject({ username: 'dee' });
    const denied = system.audit.filter((l) => l.event === 'room.denied' && l.username === 'dee');
    expect(denied.map((l) => l.reason)).toEqual([
      'other_user',
      'not_member',
      'not_in_dm',
      'not_member',
      'no_grant',
      'not_member',
      'not_member',
      'read_only',
      'read_only',
      'not_publisher',
      'not_member',
    ]);
    expect((await roomMembers(system.deps, secret, { consistent: true })).length).toBe(0);
  });
});

describe('structured messages', () => {
  it('carries text, data or both, to members and into history', async () => {
    const room = fresh('');
    const [ann, bob] = await Promise.all([connect('ann'), connect('bob')]);
    await ann.request({ type: 'join', room });
    await bob.request({ type: 'join', room });
    const payloads: Frame[] = [
      { text: 'plain' },
      { data: { kind: 'cursor', x: 3, y: [1, 2] } },
      { text: 'both', data: 'a string' },
      { data: null },
      { data: 0 },
    ];
    for (const p of payloads) {
      expect(await ann.request({ type: 'message', room, ...p })).toMatchObject({ type: 'ack' });
      const got = await bob.next(is('message'));
      expect(got).toMatchObject(p);
      if (!('text' in p)) expect(got).not.toHaveProperty('text');
    }
    expect((await publish(room, { data: { from: 'http' } })).status).toBe(202);
    expect(await bob.next(is('message'))).toMatchObject({ data: { from: 'http' }, from: 'herald' });
    const late = await connect('cyd');
    const joined = await late.request({ type: 'join', room, history: 10 });
    expect((joined.history as Frame[]).map(({ text, data }) => ({ text, data }))).toEqual([
      { text: 'plain', data: undefined },
      { text: undefined, data: { kind: 'cursor', x: 3, y: [1, 2] } },
      { text: 'both', data: 'a string' },
      { text: undefined, data: null },
      { text: undefined, data: 0 },
      { text: undefined, data: { from: 'http' } },
    ]);
  });

  it('holds data to maxMessageBytes over both paths', async () => {
    const room = fresh('');
    const ann = await connect('ann');
    await ann.request({ type: 'join', room });
    expect(await ann.request({ type: 'message', room, data: { blob: 'x'.repeat(9000) } })).toMatchObject({
      code: 'too_large',
    });
    expect((await publish(room, { data: { blob: 'x'.repeat(9000) } })).status).toBe(400);
    expect((await publish(room, { text: 'x'.repeat(5000), data: 'y'.repeat(5000) })).status).toBe(400);
    expect((await publish(room, {})).status).toBe(400);
    expect((await publish('nope:room', { text: 'x' })).status).toBe(400);
    await ann.expectNone(is('message'), 100);
  });
});

describe('GET /admin/blocks', () => {
  it('lists the user and IP blocks in force, with reason, who and until, for admins only', async () => {
    await system.request('POST', '/admin/users/cyd/block', {
      token: tokens.root,
      body: { duration_s: 600, reason: 'spam' },
    });
    await system.request('POST', '/admin/ips/10.9.8.7/block', {
      token: tokens.root,
      body: { duration_s: 60, reason: 'scanner' },
    });
    const res = await system.request('GET', '/admin/blocks', { token: tokens.root });
    expect(res.status).toBe(200);
    const now = Math.floor(system.clock.now() / 1000);
    expect(res.body.blocks).toEqual([
      { kind: 'ip', subject: '10.9.8.7', reason: 'scanner', by: 'root', until: now + 60 },
      { kind: 'user', subject: 'cyd', reason: 'spam', by: 'root', until: now + 600 },
    ]);
    expect((await system.request('GET', '/admin/blocks', { token: tokens.herald })).status).toBe(403);
    system.clock.advance(61);
    const later = await system.request('GET', '/admin/blocks', { token: tokens.root });
    expect((later.body.blocks as Frame[]).map((b) => b.subject)).toEqual(['cyd']);
    await system.request('DELETE', '/admin/users/cyd/block', { token: tokens.root });
    expect((await system.request('GET', '/admin/blocks', { token: tokens.root })).body.blocks).toEqual([]);
  });
});
