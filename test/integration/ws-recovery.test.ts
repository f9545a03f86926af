import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recentMessages } from '../../lambdas/core/history.ts';
import { loginWithRoles, registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';
import { type Client, type Frame, is, openClient, terminateAll } from '../kit/ws-client.ts';

let system: TestSystem;
const tokens: Record<string, string> = {};
let publisher = '';
const USERS = ['ida', 'jon', 'kim'] as const;
type User = (typeof USERS)[number];
const HISTORY_TTL_S = 600;
const MAX_RECOVERY = 5;

beforeAll(async () => {
  system = await startTestSystem(
    {
      RATE_LIMIT_MAX: '100000',
      HISTORY_TTL_S: String(HISTORY_TTL_S),
      MAX_RECOVERY_MESSAGES: String(MAX_RECOVERY),
      MAX_CONNECTIONS_PER_USER: '100',
      MAX_MESSAGE_BYTES: '32768',
      // Some tests move the clock past historyTtlS: the tokens must outlive that.
      ACCESS_TOKEN_TTL_S: '86400',
    },
    undefined,
    { sweeperTimer: false },
  );
  for (const u of USERS) tokens[u] = (await registerAndLogin(system, u)).access_token;
  publisher = await loginWithRoles(system, 'herald', ['publisher']);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

let rooms = 0;
const freshRoom = () => `recovery-${++rooms}`;
const connect = (user: User): Promise<Client> =>
  openClient(system.wsUrl, { protocols: ['jwt', tokens[user] ?? ''] });

async function joined(
  user: User,
  room: string,
  extra: Frame = {},
): Promise<{ client: Client; reply: Frame }> {
  const client = await connect(user);
  const reply = await client.request({ type: 'join', room, ...extra });
  expect(reply.type).toBe('joined');
  return { client, reply };
}

async function say(client: Client, room: string, text: string, extra: Frame = {}): Promise<Frame> {
  const ack = await client.request({ type: 'message', room, text, ...extra });
  expect(ack.type).toBe('ack');
  return ack;
}

const texts = (history: unknown) => (history as { text: string }[]).map((m) => m.text);
const seqs = (history: unknown) => (history as { seq: number }[]).map((m) => m.seq);

describe('per-room seq under an epoch', () => {
  it('numbers every message of a room, on the ack, the message and the joined reply', async () => {
    const room = freshRoom();
    const { client: ida, reply } = await joined('ida', room);
    expect(reply).toMatchObject({ seq: 0, epoch: expect.any(String) });
    const a1 = await say(ida, room, 'one');
    const a2 = await say(ida, room, 'two');
    expect(a1).toMatchObject({ epoch: reply.epoch, seq: 1 });
    expect(a2).toMatchObject({ epoch: reply.epoch, seq: 2 });
    expect(await ida.next(is('message', { text: 'one' }))).toMatchObject({ seq: 1, epoch: reply.epoch });
    const { reply: later } = await joined('jon', room, { history: 5 });
    expect(later).toMatchObject({ epoch: reply.epoch, seq: 2 });
    expect(seqs(later.history)).toEqual([1, 2]);
    // Another room has a numbering of its own.
    const other = freshRoom();
    const { client: kim } = await joined('kim', other);
    expect(await say(kim, other, 'first')).toMatchObject({ seq: 1 });
  });

  it('gives every one of many concurrent messages its own seq (one atomic update each)', async () => {
    const room = freshRoom();
    const senders = await Promise.all(USERS.map(async (u) => (await joined(u, room)).client));
    const acks = await Promise.all(
      senders.flatMap((c, i) => Array.from({ length: 8 }, (_, k) => say(c, room, `c${i}-${k}`))),
    );
    const numbers = acks.map((a) => a.seq as number).sort((x, y) => x - y);
    expect(numbers).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  });

  it('numbers the HTTP publish in the same sequence and answers it with epoch and seq', async () => {
    const room = freshRoom();
    const { client: ida, reply } = await joined('ida', room);
    await say(ida, room, 'ws');
    const res = await system.request('POST', `/admin/rooms/${room}/messages`, {
      token: publisher,
      body: { text: 'http' },
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ messageId: expect.any(String), epoch: reply.epoch, seq: 2 });
    expect(await ida.next(is('message', { text: 'http' }))).toMatchObject({ seq: 2, from: 'herald' });
  });
});

describe('join with since', () => {
  it('returns every message after since that the room accepted while the socket was away, oldest first', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const { client: jon } = await joined('jon', room);
    const held = await say(ida, room, 'before');
    await jon.next(is('message', { text: 'before' }));
    jon.ws.terminate(); // no close frame
    await jon.closed;
    for (const t of ['m1', 'm2', 'm3']) await say(ida, room, t);
    const { reply } = await joined('jon', room, { since: { epoch: held.epoch, seq: held.seq }, history: 2 });
    expect(reply).toMatchObject({ recovered: true, epoch: held.epoch, seq: 4 });
    expect(texts(reply.history)).toEqual(['m1', 'm2', 'm3']);
    expect(seqs(reply.history)).toEqual([2, 3, 4]);
  });

  it('recovers nothing, truthfully, when nothing was missed', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const held = await say(ida, room, 'only');
    const { reply } = await joined('jon', room, { since: { epoch: held.epoch, seq: held.seq } });
    expect(reply).toMatchObject({ recovered: true, seq: 1, history: [] });
  });

  it('recovers from the start of an epoch (seq 0) and across a skipped number', async () => {
    const room = freshRoom();
    const { client: ida, reply: start } = await joined('ida', room);
    const first = await say(ida, room, 'k', { idempotencyKey: 'same' });
    // A repeat of the key takes a number that no message keeps: seq 2 is skipped.
    expect(await say(ida, room, 'k', { idempotencyKey: 'same' })).toMatchObject({ duplicate: true });
    const { reply: mid } = await joined('jon', room);
    expect(mid.seq).toBe(2);
    await say(ida, room, 'after the skip');
    const { reply: fromZero } = await joined('kim', room, { since: { epoch: start.epoch, seq: 0 } });
    expect(fromZero).toMatchObject({ recovered: true });
    expect(seqs(fromZero.history)).toEqual([first.seq, 3]);
    const { reply: fromSkip } = await joined('kim', room, { since: { epoch: mid.epoch, seq: 2 } });
    expect(fromSkip).toMatchObject({ recovered: true });
    expect(texts(fromSkip.history)).toEqual(['after the skip']);
  });

  it('says recovered: false, with history as without since, for another epoch', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    for (const t of ['a', 'b', 'c']) await say(ida, room, t);
    const { reply } = await joined('jon', room, { since: { epoch: 'another', seq: 1 }, history: 2 });
    expect(reply).toMatchObject({ recovered: false, seq: 3 });
    expect(texts(reply.history)).toEqual(['b', 'c']);
  });

  it('says recovered: false when more than maxRecoveryMessages were missed, and true at exactly that many', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const held = await say(ida, room, 'held');
    for (let i = 0; i < MAX_RECOVERY; i++) await say(ida, room, `x${i}`);
    const since = { epoch: held.epoch, seq: held.seq };
    const { reply: exactly } = await joined('jon', room, { since });
    expect(exactly).toMatchObject({ recovered: true });
    expect(exactly.history).toHaveLength(MAX_RECOVERY);
    await say(ida, room, 'one too many');
    const { reply: over } = await joined('jon', room, { since, history: 1 });
    expect(over).toMatchObject({ recovered: false });
    expect(texts(over.history)).toEqual(['one too many']);
  });

  it('says recovered: false once the message at since has expired, and starts a new epoch once all have', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const held = await say(ida, room, 'old');
    system.clock.advance(HISTORY_TTL_S / 2);
    await say(ida, room, 'newer');
    system.clock.advance(HISTORY_TTL_S / 2 + 1); // 'old' is gone, 'newer' is not
    const { reply } = await joined('jon', room, { since: { epoch: held.epoch, seq: held.seq }, history: 5 });
    expect(reply).toMatchObject({ recovered: false, epoch: held.epoch, seq: 2 });
    expect(texts(reply.history)).toEqual(['newer']);
    system.clock.advance(HISTORY_TTL_S); // all of the room's history is gone
    const { reply: fresh } = await joined('kim', room);
    expect(fresh.epoch).not.toBe(held.epoch);
    expect(fresh.seq).toBe(0);
    expect(await say(ida, room, 'again')).toMatchObject({ epoch: fresh.epoch, seq: 1 });
  });

  it('keeps the oldest of a recovered history that would not fit in one frame, so it stays gapless', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const held = await say(ida, room, 'held');
    const big = (i: number) => `${i}`.padEnd(30_000, '.');
    for (let i = 0; i < MAX_RECOVERY; i++) await say(ida, room, big(i));
    const { client: jon, reply } = await joined('jon', room, { since: { epoch: held.epoch, seq: held.seq } });
    expect(reply).toMatchObject({ recovered: true, seq: MAX_RECOVERY + 1 });
    const first = seqs(reply.history);
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(MAX_RECOVERY);
    expect(first).toEqual(first.map((_, i) => i + 2));
    // The rest: join again from the last one received.
    const rest = await jon.request({ type: 'join', room, since: { epoch: held.epoch, seq: first.at(-1) } });
    expect(rest).toMatchObject({ recovered: true });
    expect([...first, ...seqs(rest.history)].slice(0, MAX_RECOVERY)).toEqual([2, 3, 4, 5, 6]);
  });

  it('starts one new epoch, not several, when senders race on an expired counter', async () => {
    const room = freshRoom();
    const senders = await Promise.all(USERS.map(async (u) => (await joined(u, room)).client));
    const old = await say(senders[0] as Client, room, 'old');
    system.clock.advance(HISTORY_TTL_S + 1);
    const acks = await Promise.all(
      senders.flatMap((c, i) => [say(c, room, `n${i}a`), say(c, room, `n${i}b`)]),
    );
    const epochs = new Set(acks.map((a) => a.epoch));
    expect(epochs.size).toBe(1);
    expect(epochs.has(old.epoch)).toBe(false);
    expect(acks.map((a) => a.seq as number).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a malformed since with bad_request and keeps the socket open', async () => {
    const room = freshRoom();
    const ida = await connect('ida');
    for (const since of [
      'x',
      null,
      [],
      { epoch: 'e' },
      { seq: 1 },
      { epoch: '', seq: 1 },
      { epoch: 'e#x', seq: 1 },
      { epoch: 'e'.repeat(65), seq: 1 },
      { epoch: 'e', seq: -1 },
      { epoch: 'e', seq: 1.5 },
      { epoch: 'e', seq: '1' },
    ]) {
      ida.send({ type: 'join', room, since, id: 'bad' });
      expect(await ida.next(is('error'))).toMatchObject({ code: 'bad_request', id: 'bad' });
    }
    expect((await ida.request({ type: 'ping' })).type).toBe('pong');
  });
});

describe('idempotent publish', () => {
  it('neither stores nor delivers a repeated key again, and answers it with the first reference', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const { client: jon } = await joined('jon', room);
    await ida.next(is('member_joined'));
    const first = await say(ida, room, 'once', { idempotencyKey: 'key-1' });
    expect(first.duplicate).toBeUndefined();
    const again = await say(ida, room, 'once', { idempotencyKey: 'key-1' });
    expect(again).toMatchObject({
      messageId: first.messageId,
      epoch: first.epoch,
      seq: first.seq,
      duplicate: true,
    });
    await Promise.all([ida, jon].map((c) => c.next(is('message', { text: 'once' }))));
    await Promise.all([ida, jon].map((c) => c.expectNone(is('message'), 250)));
    expect(ida.count(is('message', { text: 'once' }))).toBe(1);
    const history = await recentMessages(system.deps, room, 50, Math.floor(system.clock.now() / 1000));
    expect(texts(history)).toEqual(['once']);
  });

  it('keeps keys apart per user and per room', async () => {
    const room = freshRoom();
    const other = freshRoom();
    const { client: ida } = await joined('ida', room);
    await ida.request({ type: 'join', room: other });
    const { client: jon } = await joined('jon', room);
    const a = await say(ida, room, 'a', { idempotencyKey: 'shared' });
    expect((await say(jon, room, 'b', { idempotencyKey: 'shared' })).duplicate).toBeUndefined();
    expect((await say(ida, other, 'c', { idempotencyKey: 'shared' })).duplicate).toBeUndefined();
    expect((await say(ida, room, 'd', { idempotencyKey: 'shared' })).messageId).toBe(a.messageId);
  });

  it('publishes exactly one of two copies racing from two sockets of one user', async () => {
    const room = freshRoom();
    const { client: a } = await joined('ida', room);
    const { client: b } = await joined('ida', room);
    const { client: watcher } = await joined('kim', room);
    for (let i = 0; i < 10; i++) {
      const key = `race-${i}`;
      const [x, y] = await Promise.all([
        say(a, room, `r${i}`, { idempotencyKey: key }),
        say(b, room, `r${i}`, { idempotencyKey: key }),
      ]);
      expect(x.messageId).toBe(y.messageId);
      expect(x.seq).toBe(y.seq);
      expect([x.duplicate, y.duplicate].filter((d) => d === true)).toHaveLength(1);
    }
    await watcher.expectNone(() => false, 300);
    for (let i = 0; i < 10; i++) expect(watcher.count(is('message', { text: `r${i}` }))).toBe(1);
    const history = await recentMessages(system.deps, room, 50, Math.floor(system.clock.now() / 1000));
    expect(texts(history)).toHaveLength(10);
  });

  it('answers a repeated HTTP publish, also racing, with the first reference and duplicate: true', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const post = () =>
      system.request('POST', `/admin/rooms/${room}/messages`, {
        token: publisher,
        body: { text: 'notice', idempotencyKey: 'http-1' },
      });
    const [x, y] = await Promise.all([post(), post()]);
    expect([x.status, y.status]).toEqual([202, 202]);
    expect(x.body.messageId).toBe(y.body.messageId);
    expect([x.body.duplicate, y.body.duplicate].filter((d) => d === true)).toHaveLength(1);
    const z = await post();
    expect(z.body).toMatchObject({ messageId: x.body.messageId, seq: x.body.seq, duplicate: true });
    await ida.next(is('message', { text: 'notice' }));
    await ida.expectNone(is('message'), 250);
  });

  it('refuses a bad idempotencyKey (bad_request, 400) and publishes nothing', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    for (const key of ['', 'k'.repeat(65), 7, null, {}]) {
      ida.send({ type: 'message', room, text: 'no', idempotencyKey: key, id: 'bad' });
      expect(await ida.next(is('error'))).toMatchObject({ code: 'bad_request', id: 'bad' });
      const res = await system.request('POST', `/admin/rooms/${room}/messages`, {
        token: publisher,
        body: { text: 'no', idempotencyKey: key },
      });
      expect(res.status).toBe(400);
    }
    await ida.expectNone(is('message'), 200);
    expect(await say(ida, room, 'yes', { idempotencyKey: 'k'.repeat(64) })).toMatchObject({ seq: 1 });
  });

  it('forgets a key after historyTtlS: the same key then publishes a new message', async () => {
    const room = freshRoom();
    const { client: ida } = await joined('ida', room);
    const first = await say(ida, room, 'early', { idempotencyKey: 'ttl' });
    system.clock.advance(HISTORY_TTL_S + 1);
    const later = await say(ida, room, 'late', { idempotencyKey: 'ttl' });
    expect(later.duplicate).toBeUndefined();
    expect(later.messageId).not.toBe(first.messageId);
  });
});
