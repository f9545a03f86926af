import { describe, expect, it, vi } from 'vitest';
import { newMessageKey } from '../../../lambdas/core/frame-crypto.ts';
import { Encryption } from '../../../web/encryption.ts';
import type { RealtimeError } from '../../../web/errors.ts';
import { FrameCipher } from '../../../web/jwe.ts';
import type { WebSocketLike } from '../../../web/options.ts';
import type { ServerFrame } from '../../../web/protocol.ts';

function socket(): WebSocketLike & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    readyState: 1,
    protocol: 'jwt',
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    send: (data) => sent.push(data),
    close: () => {},
  };
}

/** Waits (up to 5 s) until the chains have done what `done` looks for: sealing is async. */
const settle = (done: () => boolean) =>
  vi.waitFor(() => expect(done()).toBe(true), { timeout: 5000, interval: 5 });

describe('Encryption', () => {
  it('sends frames as they are without a key, and hands plain frames over at once', () => {
    const e = new Encryption(() => {});
    const s = socket();
    e.send(s, { type: 'ping', id: 'c1' });
    expect(s.sent).toEqual(['{"type":"ping","id":"c1"}']);
    const got: ServerFrame[] = [];
    e.receive('{"type":"pong","id":"c1"}', (f) => got.push(f));
    expect(got).toEqual([{ type: 'pong', id: 'c1' }]);
    expect(e.on).toBe(false);
  });

  it('seals frames under the key, in the order sent, the id repeated outside', async () => {
    const key = newMessageKey();
    const e = new Encryption(() => {});
    e.useKey(key, false);
    const s = socket();
    for (let i = 1; i <= 5; i++) e.send(s, { type: 'ping', id: `c${i}` });
    await settle(() => s.sent.length >= 5);
    const cipher = new FrameCipher(key);
    const frames = s.sent.map((text) => JSON.parse(text) as { type: string; jwe: string; id: string });
    expect(frames.map((f) => [f.type, f.id])).toEqual([1, 2, 3, 4, 5].map((i) => ['encrypted', `c${i}`]));
    expect(await cipher.decrypt(frames[4]?.jwe ?? '')).toBe('{"type":"ping","id":"c5"}');
  });

  it('keeps incoming frames in order across decryption, and reports one that does not decrypt', async () => {
    const key = newMessageKey();
    const errors: RealtimeError[] = [];
    const e = new Encryption((err) => errors.push(err));
    e.useKey(key, false);
    const cipher = new FrameCipher(key);
    const sealed = await cipher.encrypt('{"type":"pong","id":"c1"}');
    const other = await new FrameCipher(newMessageKey()).encrypt('{"type":"pong","id":"c2"}');
    const got: ServerFrame[] = [];
    e.receive(JSON.stringify({ type: 'encrypted', jwe: sealed }), (f) => got.push(f));
    e.receive(JSON.stringify({ type: 'encrypted', jwe: other }), (f) => got.push(f));
    e.receive('{"type":"pong","id":"c3"}', (f) => got.push(f));
    await settle(() => got.length >= 2 && errors.length >= 1);
    expect(got.map((f) => 'id' in f && f.id)).toEqual(['c1', 'c3']);
    expect(errors.map((err) => err.code)).toEqual(['decryption_failed']);
  });

  it('keeps its key over a refresh without one, and drops it for a new session without one', () => {
    const e = new Encryption(() => {});
    e.useKey(newMessageKey(), false);
    e.useKey(undefined, true);
    expect(e.on).toBe(true);
    e.useKey(undefined, false);
    expect(e.on).toBe(false);
    expect(() => e.useKey('short', false)).toThrow(TypeError);
  });
});
