import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { roomMembers } from '../../lambdas/core/room-members.ts';
import { allSocketRows } from '../../lambdas/core/socket-rows.ts';
import { accessTokens, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { type Client, type Frame, is, openClient, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
let tokens: Record<string, string> = {};
const USERS = ['amy', 'ben', 'cat'] as const;
type User = (typeof USERS)[number];

beforeAll(async () => {
  // The per-user frame limit has its own file; here it must never get in the way.
  system = await startWsTestSystem();
  tokens = await accessTokens(system, USERS);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

let rooms = 0;
/** A room name no other test uses. */
const freshRoom = () => `room-${++rooms}`;

function connect(user: User): Promise<Client> {
  return openClient(system.wsUrl, { protocols: ['jwt', tokens[user] ?? ''] });
}

/** Opens a socket per user and joins them all to `room`, waiting out every member_joined. */
async function inRoom(room: string, ...users: User[]): Promise<Client[]> {
  const clients: Client[] = [];
  for (const u of users) {
    const c = await connect(u);
    expect(await c.request({ type: 'join', room })).toMatchObject({ type: 'joined', room });
    for (const other of clients) await other.next(is('member_joined', { room, username: u }));
    clients.push(c);
  }
  return clients;
}

async function say(client: Client, room: string, text: string): Promise<Frame> {
  const ack = await client.request({ type: 'message', room, text });
  expect(ack.type).toBe('ack');
  return ack;
}

describe('join', () => {
  it('answers joined with the id and an empty history, and tells only the others member_joined', async () => {
    const room = freshRoom();
    const amy = await connect('amy');
    amy.send({ type: 'join', room, id: 'j1' });
    expect(await amy.next(is('joined'))).toEqual({
      type: 'joined',
      room,
      epoch: expect.stringMatching(/^[a-z0-9]+$/),
      seq: 0,
      members: ['amy'],
      history: [],
      id: 'j1',
    });
    const ben = await connect('ben');
    expect(await ben.request({ type: 'join', room })).toMatchObject({ type: 'joined', room, history: [] });
    expect(await amy.next(is('member_joined'))).toEqual({ type: 'member_joined', room, username: 'ben' });
    await ben.expectNone(is('member_joined'));
  });

  it('returns up to N of the latest messages, oldest first', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy');
    for (let i = 0; i < 5; i++) {
      system.clock.advance(0.001); // distinct milliseconds: history is ordered by time
      await say(amy as Client, room, `m${i}`);
    }
    const ben = await connect('ben');
    const joined = await ben.request({ type: 'join', room, history: 3 });
    const history = joined.history as Frame[];
    expect(history.map((m) => m.text)).toEqual(['m2', 'm3', 'm4']);
    for (const m of history) {
      expect(m).toMatchObject({ type: 'message', room, from: 'amy' });
      expect(typeof m.messageId).toBe('string');
      expect(typeof m.ts).toBe('number');
    }
    const ts = history.map((m) => Number(m.ts));
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
  });

  it('returns no history when none is asked for, and all of it when N exceeds what there is', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy');
    await say(amy as Client, room, 'only');
    const ben = await connect('ben');
    expect((await ben.request({ type: 'join', room })).history).toEqual([]);
    const cat = await connect('cat');
    const all = (await cat.request({ type: 'join', room, history: 10 })).history as Frame[];
    expect(all.map((m) => m.text)).toEqual(['only']);
  });

  it('returns at most 50 messages of history, the latest ones', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy');
    for (let i = 0; i < 55; i++) {
      system.clock.advance(0.001);
      await say(amy as Client, room, `h${i}`);
    }
    const ben = await connect('ben');
    const history = (await ben.request({ type: 'join', room, history: 1000 })).history as Frame[];
    expect(history).toHaveLength(50);
    expect(history[0]?.text).toBe('h5');
    expect(history[49]?.text).toBe('h54');
  });

  it('trims a joined reply from its oldest history to fit 128 KB, whatever the messages weigh', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy');
    // Text as long as an 8 KiB frame allows: 50 of them would make a 413 KB reply.
    const filler = 'w'.repeat(
      8192 - Buffer.byteLength(JSON.stringify({ type: 'message', room, text: '', id: 'xx' })) - 40,
    );
    for (let i = 0; i < 50; i++) {
      system.clock.advance(0.001);
      await say(amy as Client, room, `${String(i).padStart(2, '0')}${filler}`);
    }
    const ben = await connect('ben');
    const sizes: number[] = [];
    ben.ws.on('message', (data: Buffer) => sizes.push(data.length));
    for (const n of [20, 50]) {
      const joined = await ben.request({ type: 'join', room, history: n });
      const history = joined.history as Frame[];
      expect(sizes.at(-1)).toBeLessThanOrEqual(128 * 1024);
      // The newest messages are kept, oldest first, and as many as fit.
      expect(history.length).toBeGreaterThanOrEqual(14);
      expect(history.length).toBeLessThan(n);
      expect(history.at(-1)?.text).toMatch(/^49/);
      expect(history.map((m) => Number(String(m.text).slice(0, 2)))).toEqual(
        history.map((_, i) => 50 - history.length + i),
      );
    }
  });

  it('joining a room twice sends no second member_joined', async () => {
    const room = freshRoom();
    const [amy, ben] = await inRoom(room, 'amy', 'ben');
    expect(await (ben as Client).request({ type: 'join', room })).toMatchObject({ type: 'joined' });
    await (amy as Client).expectNone(is('member_joined'));
  });
});

describe('joined members', () => {
  it("lists the room's members, the joiner included, sorted and unique, so no presence frame is needed", async () => {
    const room = freshRoom();
    await inRoom(room, 'ben', 'amy', 'amy');
    const cat = await connect('cat');
    expect((await cat.request({ type: 'join', room })).members).toEqual(['amy', 'ben', 'cat']);
    // Joining again answers with the members too, and tells nobody.
    expect((await cat.request({ type: 'join', room })).members).toEqual(['amy', 'ben', 'cat']);
  });
});

describe('presence', () => {
  it('lists the usernames of the members, to members only', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy', 'ben');
    expect(await (amy as Client).request({ type: 'presence', room })).toMatchObject({
      type: 'presence',
      room,
      members: ['amy', 'ben'],
    });
    const cat = await connect('cat');
    cat.send({ type: 'presence', room, id: 'p1' });
    expect(await cat.next(is('error'))).toMatchObject({ type: 'error', code: 'forbidden', id: 'p1' });
  });

  it('lists a user with two sockets in the room once', async () => {
    const room = freshRoom();
    const [amy] = await inRoom(room, 'amy', 'amy', 'ben');
    expect((await (amy as Client).request({ type: 'presence', room })).members).toEqual(['amy', 'ben']);
  });
});

describe('leave', () => {
  it('answers left, tells the others member_left, and ends the membership', async () => {
    const room = freshRoom();
    const [amy, ben] = await inRoom(room, 'amy', 'ben');
    (amy as Client).send({ type: 'leave', room, id: 7 });
    expect(await (amy as Client).next(is('left'))).toEqual({ type: 'left', room, id: 7 });
    expect(await (ben as Client).next(is('member_left'))).toEqual({
      type: 'member_left',
      room,
      username: 'amy',
    });
    expect((await (ben as Client).request({ type: 'presence', room })).members).toEqual(['ben']);
    const denied = await (amy as Client).request({ type: 'message', room, text: 'still here?' });
    expect(denied).toMatchObject({ type: 'error', code: 'forbidden' });
    await (ben as Client).expectNone(is('message'));
  });

  it('tells the others member_left when a member socket closes', async () => {
    const room = freshRoom();
    const [amy, ben, cat] = await inRoom(room, 'amy', 'ben', 'cat');
    await (amy as Client).close();
    expect(await (ben as Client).next(is('member_left'))).toEqual({
      type: 'member_left',
      room,
      username: 'amy',
    });
    expect(await (cat as Client).next(is('member_left'))).toEqual({
      type: 'member_left',
      room,
      username: 'amy',
    });
    expect((await (ben as Client).request({ type: 'presence', room })).members).toEqual(['ben', 'cat']);
  });
});

describe('message', () => {
  it('reaches every member, the sender included, exactly once, and acks the sender with its id', async () => {
    const room = freshRoom();
    const members = await inRoom(room, 'amy', 'ben', 'cat');
    const [amy] = members as [Client, ...Client[]];
    amy.send({ type: 'message', room, text: 'hello room', id: 'm-1' });
    const ack = await amy.next(is('ack'));
    expect(ack).toEqual({
      type: 'ack',
      id: 'm-1',
      messageId: expect.any(String),
      epoch: expect.any(String),
      seq: 1,
    });
    for (const c of members) {
      const m = await c.next(is('message'));
      expect(m).toEqual({
        type: 'message',
        room,
        from: 'amy',
        text: 'hello room',
        ts: system.clock.now(),
        messageId: ack.messageId,
        epoch: ack.epoch,
        seq: 1,
      });
    }
    // Exactly once: no copy arrives during a grace period.
    await Promise.all(members.map((c) => c.expectNone(is('message'), 250)));
  });

  it('reaches each of a user’s sockets in the room once', async () => {
    const room = freshRoom();
    const [a1, a2, ben] = (await inRoom(room, 'amy', 'amy', 'ben')) as [Client, Client, Client];
    await say(ben, room, 'to both of you');
    for (const c of [a1, a2, ben]) {
      await c.next(is('message', { text: 'to both of you' }));
      await c.expectNone(is('message'), 150);
    }
  });

  it('refuses a message to a room the sender is not in with forbidden, and delivers it to nobody', async () => {
    const room = freshRoom();
    const members = await inRoom(room, 'amy', 'ben');
    const cat = await connect('cat');
    cat.send({ type: 'message', room, text: 'sneaky', id: 'x' });
    expect(await cat.next(is('error'))).toMatchObject({ type: 'error', code: 'forbidden', id: 'x' });
    await Promise.all([...members, cat].map((c) => c.expectNone(is('message'), 250)));
  });

  it('only reaches the members of its room', async () => {
    const room = freshRoom();
    const other = freshRoom();
    const [amy, ben] = (await inRoom(room, 'amy', 'ben')) as [Client, Client];
    const [cat, amy2] = (await inRoom(other, 'cat', 'amy')) as [Client, Client];
    const idle = await connect('ben'); // in no room at all
    await say(amy, room, 'for room one');
    await ben.next(is('message', { text: 'for room one' }));
    await amy.next(is('message', { text: 'for room one' }));
    await Promise.all([cat, amy2, idle].map((c) => c.expectNone(is('message'), 250)));
  });
});

describe('whoami and ping', () => {
  it('answers whoami with the identity of the token', async () => {
    const amy = await connect('amy');
    const claims = decodeJwt(tokens.amy ?? '');
    amy.send({ type: 'whoami', id: 'w' });
    expect(await amy.next(is('identity'))).toEqual({
      type: 'identity',
      sub: claims.sub,
      username: 'amy',
      roles: ['user'],
      exp: claims.exp,
      id: 'w',
    });
  });

  it('answers ping with pong, echoing a string or an integer id, or none', async () => {
    const amy = await connect('amy');
    amy.send({ type: 'ping', id: 'abc' });
    expect(await amy.next(is('pong'))).toEqual({ type: 'pong', id: 'abc' });
    amy.send({ type: 'ping', id: 42 });
    expect(await amy.next(is('pong'))).toEqual({ type: 'pong', id: 42 });
    amy.send({ type: 'ping' });
    expect(await amy.next(is('pong'))).toEqual({ type: 'pong' });
  });
});

describe('bad frames', () => {
  it('answers a frame that is not JSON with bad_request and keeps the socket', async () => {
    const amy = await connect('amy');
    amy.send('this is not json');
    expect(await amy.next(is('error'))).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(await amy.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  const bad: [string, Frame][] = [
    ['an unknown type', { type: 'shout' }],
    ['no type', { room: 'x' }],
    ['a type that is not a string', { type: 7 }],
    ['a join without a room', { type: 'join' }],
    ['a room of 65 characters', { type: 'join', room: 'r'.repeat(65) }],
    ['an empty room', { type: 'join', room: '' }],
    ['a room with a space', { type: 'join', room: 'a b' }],
    ['a room with a slash', { type: 'join', room: 'a/b' }],
    ['a room with a hash', { type: 'join', room: 'a#b' }],
    ['a room with a non-ASCII letter', { type: 'join', room: 'caf\u00e9' }],
    ['a room that is a number', { type: 'join', room: 12 }],
    ['a negative history', { type: 'join', room: 'ok', history: -1 }],
    ['a fractional history', { type: 'join', room: 'ok', history: 1.5 }],
    ['a history that is a string', { type: 'join', room: 'ok', history: '3' }],
    ['a message without text', { type: 'message', room: 'ok' }],
    ['a message with empty text', { type: 'message', room: 'ok', text: '' }],
    ['a message whose text is not a string', { type: 'message', room: 'ok', text: { a: 1 } }],
    ['a presence with a bad room', { type: 'presence', room: 'no spaces' }],
    ['a leave with a bad room', { type: 'leave', room: '' }],
    ['a refresh_token without a token', { type: 'refresh_token' }],
  ];
  for (const [name, frame] of bad) {
    it(`answers ${name} with bad_request, echoing the id`, async () => {
      const amy = await connect('amy');
      amy.send({ ...frame, id: 'bad-1' });
      expect(await amy.next(is('error'))).toMatchObject({ type: 'error', code: 'bad_request', id: 'bad-1' });
    });
  }

  it('answers a JSON array and a JSON string with bad_request', async () => {
    const amy = await connect('amy');
    amy.send('[1,2]');
    amy.send('"ping"');
    await amy.next(is('error', { code: 'bad_request' }));
    await amy.next(is('error', { code: 'bad_request' }));
  });

  it('answers an id of 65 characters with bad_request', async () => {
    const amy = await connect('amy');
    amy.send({ type: 'ping', id: 'i'.repeat(65) });
    expect(await amy.next(is('error'))).toMatchObject({ code: 'bad_request' });
    await amy.expectNone(is('pong'));
  });

  it('accepts a frame of exactly maxMessageBytes and answers one byte more with too_large', async () => {
    const room = freshRoom();
    const [amy] = (await inRoom(room, 'amy')) as [Client];
    const max = system.deps.settings.maxMessageBytes;
    const frame = (bytes: number, id: string) => {
      const base = JSON.stringify({ type: 'message', room, text: '', id });
      return JSON.stringify({ type: 'message', room, text: 'x'.repeat(bytes - base.length), id });
    };
    const exact = frame(max, 'exact');
    expect(Buffer.byteLength(exact)).toBe(max);
    amy.send(exact);
    expect(await amy.next((f) => f.id === 'exact')).toMatchObject({ type: 'ack' });
    const over = frame(max + 1, 'over');
    expect(Buffer.byteLength(over)).toBe(max + 1);
    amy.send(over);
    expect(await amy.next((f) => f.id === 'over')).toMatchObject({ type: 'error', code: 'too_large' });
  });

  it('answers a frame over maxMessageBytes with too_large, keeps the socket open and working', async () => {
    const amy = await connect('amy');
    amy.send({ type: 'ping', id: 'big', pad: 'x'.repeat(system.deps.settings.maxMessageBytes) });
    expect(await amy.next(is('error'))).toMatchObject({ type: 'error', code: 'too_large', id: 'big' });
    expect(await amy.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await amy.request({ type: 'whoami' })).toMatchObject({ type: 'identity', username: 'amy' });
  });

  it('closes a socket that sends a frame over 32 KB with 1009, as API Gateway does; other sockets stay', async () => {
    const amy = await connect('amy');
    const other = await connect('amy');
    amy.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(32 * 1024) }));
    expect((await amy.closed).code).toBe(1009);
    expect(await other.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('rooms per socket', () => {
  it('holds a socket to 50 rooms when 60 joins arrive back to back, leaving no stray membership', async () => {
    const amy = await connect('amy');
    const names = Array.from({ length: 60 }, (_, i) => `cap-${i}`);
    for (const [i, room] of names.entries()) amy.send({ type: 'join', room, id: `cap${i}` });
    const replies = await Promise.all(names.map((_, i) => amy.next((f) => f.id === `cap${i}`, 10_000)));
    const joined = new Set(replies.filter((r) => r.type === 'joined').map((r) => String(r.room)));
    expect(joined.size).toBe(50);
    const refused = replies.filter((r) => r.type === 'error');
    expect(refused).toHaveLength(10);
    for (const r of refused)
      expect(r).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/50 rooms/) });

    // The socket row (what $disconnect reads) and the membership items (what fan-out reads) agree.
    // Its own user: room comes on top of the 50 it joined.
    const row = (await allSocketRows(system.deps)).find((c) => c.rooms.some((r) => r.startsWith('cap-')));
    expect(new Set(row?.rooms)).toEqual(new Set([...joined, 'user:amy']));
    const withMember = await Promise.all(
      names.map(async (room) => ((await roomMembers(system.deps, room)).length > 0 ? room : '')),
    );
    expect(new Set(withMember.filter(Boolean))).toEqual(joined);
    // A room already joined may be joined again, and the socket stays open.
    expect(await amy.request({ type: 'join', room: [...joined][0] })).toMatchObject({ type: 'joined' });
  });
});
