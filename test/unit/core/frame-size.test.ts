import { describe, expect, it } from 'vitest';
import { encryptFrame, newMessageKey } from '../../../lambdas/core/frame-crypto.ts';
import { encryptedFrameBytes, fitFrame, MAX_OUTGOING_FRAME_BYTES } from '../../../lambdas/core/frame-size.ts';

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('encryptedFrameBytes', () => {
  it('is the exact size of a sealed frame, for any plaintext size', async () => {
    const key = newMessageKey();
    for (const text of ['', 'a', 'ab', 'abc', 'é'.repeat(1000), 'x'.repeat(100_001)]) {
      const frame = { type: 'message', text };
      expect(bytes(await encryptFrame(key, frame))).toBe(encryptedFrameBytes(bytes(frame)));
    }
  });
});

describe('fitFrame', () => {
  const history = Array.from({ length: 50 }, (_, i) => ({ n: i, text: 'h'.repeat(8000) }));

  it('keeps a frame that fits as it is', () => {
    const frame = { type: 'joined', history: history.slice(0, 3) };
    expect(fitFrame(frame, 'history', { encrypted: false })).toBe(frame);
  });

  it('drops the oldest items until the whole frame fits, keeping the newest in order', () => {
    const frame = { type: 'joined', room: 'r', history, id: 'j' };
    const fitted = fitFrame(frame, 'history', { encrypted: false });
    expect(bytes(fitted)).toBeLessThanOrEqual(MAX_OUTGOING_FRAME_BYTES);
    const kept = fitted.history.map((h) => h.n);
    expect(kept.at(-1)).toBe(49);
    expect(kept).toEqual(kept.map((_, i) => 50 - kept.length + i));
    // One more item would not have fitted.
    const oneMore = { ...frame, history: history.slice(49 - kept.length) };
    expect(bytes(oneMore)).toBeGreaterThan(MAX_OUTGOING_FRAME_BYTES);
  });

  it("with drop: 'newest', keeps the oldest items instead, so a recovered history stays gapless", () => {
    const frame = { type: 'joined', room: 'r', history, id: 'j' };
    const fitted = fitFrame(frame, 'history', { encrypted: false, drop: 'newest' });
    expect(bytes(fitted)).toBeLessThanOrEqual(MAX_OUTGOING_FRAME_BYTES);
    const kept = fitted.history.map((h) => h.n);
    expect(kept.length).toBeLessThan(history.length);
    expect(kept).toEqual(kept.map((_, i) => i));
    const oneMore = { ...frame, history: history.slice(0, kept.length + 1) };
    expect(bytes(oneMore)).toBeGreaterThan(MAX_OUTGOING_FRAME_BYTES);
  });

  it('counts every other field of the frame, e.g. a member list', () => {
    const members = Array.from({ length: 2000 }, (_, i) => `member_${i}`);
    const plain = fitFrame({ type: 'joined', history }, 'history', { encrypted: false });
    const withMembers = fitFrame({ type: 'joined', members, history }, 'history', { encrypted: false });
    expect(bytes(withMembers)).toBeLessThanOrEqual(MAX_OUTGOING_FRAME_BYTES);
    expect(withMembers.history.length).toBeLessThan(plain.history.length);
  });

  it('leaves room for the encryption envelope when the frame will be sealed', async () => {
    const fitted = fitFrame({ type: 'joined', history }, 'history', { encrypted: true });
    const sealed = await encryptFrame(newMessageKey(), fitted);
    expect(bytes(sealed)).toBeLessThanOrEqual(MAX_OUTGOING_FRAME_BYTES);
    expect(bytes(sealed)).toBeGreaterThan(MAX_OUTGOING_FRAME_BYTES - 8000 * 2);
  });
});
