import { base64url, CompactEncrypt, compactDecrypt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerAndLogin, startTestSystem, startWsTestSystem, type TestSystem } from '../kit/system.ts';
import { type Frame, is, openClient, terminateAll } from '../kit/ws-client.ts';

async function seal(key: string, frame: unknown): Promise<Frame> {
  const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(frame)))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(base64url.decode(key));
  return { type: 'encrypted', jwe };
}

async function open(key: string, frame: Frame): Promise<Frame> {
  expect(frame.type).toBe('encrypted');
  const { plaintext } = await compactDecrypt(frame.jwe as string, base64url.decode(key));
  return JSON.parse(new TextDecoder().decode(plaintext)) as Frame;
}

let system: TestSystem;
beforeAll(async () => {
  system = await startWsTestSystem({ MESSAGE_ENCRYPTION: 'true', RATE_LIMIT_MAX: '1000' });
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

type Pair = { access_token: string; refresh_token: string; message_key?: string };

describe('messageEncryption on', () => {
  it('hands out a per-session 256-bit message key at login, the same one again at refresh', async () => {
    const a = (await registerAndLogin(system, 'enc_a')) as Pair;
    expect(a.message_key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const again = (
      await system.request('POST', '/auth/login', {
        body: { username: 'enc_a', password: 'correct horse battery staple' },
      })
    ).body as Pair;
    expect(again.message_key).not.toBe(a.message_key);
    const refreshed = (
      await system.request('POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } })
    ).body as Pair;
    expect(refreshed.message_key).toBe(a.message_key);
  });

  it('answers encrypted frames encrypted, and delivers room messages encrypted for each member with its own key', async () => {
    const a = (await registerAndLogin(system, 'enc_b')) as Pair;
    const b = (await registerAndLogin(system, 'enc_c')) as Pair;
    const keyA = a.message_key ?? '';
    const keyB = b.message_key ?? '';
    const sa = await openClient(system.wsUrl, { protocols: ['jwt', a.access_token] });
    const sb = await openClient(system.wsUrl, { protocols: ['jwt', b.access_token] });

    sa.send(await seal(keyA, { type: 'join', room: 'secret', id: 'j1' }));
    expect(await open(keyA, await sa.next(is('encrypted')))).toMatchObject({
      type: 'joined',
      room: 'secret',
      id: 'j1',
    });
    sb.send(await seal(keyB, { type: 'join', room: 'secret' }));
    expect(await open(keyB, await sb.next(is('encrypted')))).toMatchObject({ type: 'joined' });
    expect(await open(keyA, await sa.next(is('encrypted')))).toMatchObject({
      type: 'member_joined',
      username: 'enc_c',
    });

    sa.send(await seal(keyA, { type: 'message', room: 'secret', text: 'the eagle has landed', id: 'm1' }));
    const forB = await sb.next(is('encrypted'));
    expect(JSON.stringify(forB)).not.toContain('eagle');
    expect(await open(keyB, forB)).toMatchObject({
      type: 'message',
      from: 'enc_b',
      text: 'the eagle has landed',
    });
    await expect(open(keyA, forB)).rejects.toThrow();
    const forA = [
      await open(keyA, await sa.next(is('encrypted'))),
      await open(keyA, await sa.next(is('encrypted'))),
    ];
    expect(forA.map((f) => f.type).sort()).toEqual(['ack', 'message']);
    expect(forA.find((f) => f.type === 'ack')).toMatchObject({ id: 'm1' });
  });

  it('encrypts the errors of encrypted frames, refuses undecryptable ones in the clear, and keeps the socket open', async () => {
    const a = (await registerAndLogin(system, 'enc_d')) as Pair;
    const key = a.message_key ?? '';
    const s = await openClient(system.wsUrl, { protocols: ['jwt', a.access_token] });
    s.send(await seal(key, { type: 'message', room: 'not_joined', text: 'x', id: 'e1' }));
    expect(await open(key, await s.next(is('encrypted')))).toMatchObject({
      type: 'error',
      code: 'forbidden',
      id: 'e1',
    });
    s.send(await seal(base64url.encode(new Uint8Array(32)), { type: 'ping' }));
    expect(await s.next(is('error'))).toMatchObject({ code: 'bad_request' });
    s.send({ type: 'encrypted', jwe: 'not.a.jwe.at.all' });
    expect(await s.next(is('error'))).toMatchObject({ code: 'bad_request' });
    s.send(await seal(key, await seal(key, { type: 'ping' })));
    expect(await open(key, await s.next(is('encrypted')))).toMatchObject({
      type: 'error',
      code: 'bad_request',
    });
    expect(await s.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('frame sizes out, encrypted', () => {
  it('trims a sealed joined reply so that the sealed frame fits 128 KB', async () => {
    const a = (await registerAndLogin(system, 'big_sender')) as Pair;
    const keyA = a.message_key ?? '';
    const sa = await openClient(system.wsUrl, { protocols: ['jwt', a.access_token] });
    sa.send(await seal(keyA, { type: 'join', room: 'heavy' }));
    await sa.next(is('encrypted'));
    // The largest text whose sealed frame stays within the 8 KiB frame limit.
    const text = 'e'.repeat(5900);
    for (let i = 0; i < 30; i++) {
      const frame = await seal(keyA, {
        type: 'message',
        room: 'heavy',
        text: `${String(i).padStart(2, '0')}${text}`,
        id: `m${i}`,
      });
      expect(Buffer.byteLength(JSON.stringify(frame))).toBeLessThanOrEqual(8192);
      sa.send(frame);
      // The ack and this socket's own copy of the message.
      await sa.next(is('encrypted'));
      await sa.next(is('encrypted'));
    }
    const b = (await registerAndLogin(system, 'big_reader')) as Pair;
    const keyB = b.message_key ?? '';
    const sb = await openClient(system.wsUrl, { protocols: ['jwt', b.access_token] });
    const sizes: number[] = [];
    sb.ws.on('message', (data: Buffer) => sizes.push(data.length));
    sb.send(await seal(keyB, { type: 'join', room: 'heavy', history: 30 }));
    const joined = await open(keyB, await sb.next(is('encrypted')));
    expect(sizes.at(-1)).toBeLessThanOrEqual(128 * 1024);
    const history = joined.history as Frame[];
    expect(history.length).toBeGreaterThanOrEqual(10);
    expect(history.length).toBeLessThan(30);
    expect(String(history.at(-1)?.text)).toMatch(/^29/);
  });
});

describe('compressed JWE', () => {
  it('refuses a zip JWE that would inflate past maxMessageBytes: nothing acknowledged, stored or served as history', async () => {
    const a = (await registerAndLogin(system, 'zip_sender')) as Pair;
    const b = (await registerAndLogin(system, 'zip_reader')) as Pair;
    const keyA = a.message_key ?? '';
    const keyB = b.message_key ?? '';
    const sa = await openClient(system.wsUrl, { protocols: ['jwt', a.access_token] });
    sa.send(await seal(keyA, { type: 'join', room: 'zipped', id: 'j' }));
    expect(await open(keyA, await sa.next(is('encrypted')))).toMatchObject({ type: 'joined' });

    const inner = { type: 'message', room: 'zipped', text: 'A'.repeat(200_000), id: 'z1' };
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(inner)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' })
      .encrypt(base64url.decode(keyA));
    const frame = JSON.stringify({ type: 'encrypted', jwe });
    expect(Buffer.byteLength(frame)).toBeLessThan(8192);
    sa.send(frame);
    expect(await sa.next(is('error'))).toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(/zip/),
    });
    await sa.expectNone((f) => f.type === 'encrypted', 300);

    const sb = await openClient(system.wsUrl, { protocols: ['jwt', b.access_token] });
    sb.send(await seal(keyB, { type: 'join', room: 'zipped', history: 20 }));
    expect(await open(keyB, await sb.next(is('encrypted')))).toMatchObject({ type: 'joined', history: [] });
    // The socket lives on.
    expect(await sa.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('messageEncryption off', () => {
  it('hands out no key and refuses encrypted frames', async () => {
    const plain = await startTestSystem({}, undefined, { sweeperTimer: false });
    try {
      const a = (await registerAndLogin(plain, 'plain_user')) as Pair;
      expect(a.message_key).toBeUndefined();
      const s = await openClient(plain.wsUrl, { protocols: ['jwt', a.access_token] });
      s.send({ type: 'encrypted', jwe: 'a.b.c.d.e' });
      expect(await s.next(is('error'))).toMatchObject({
        code: 'bad_request',
        message: expect.stringMatching(/not enabled/),
      });
    } finally {
      await plain.close();
    }
  });
});
