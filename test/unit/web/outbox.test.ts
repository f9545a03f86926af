import { describe, expect, it } from 'vitest';
import { RealtimeError } from '../../../web/errors.ts';
import { Outbox, type OutgoingFrame } from '../../../web/outbox.ts';
import type { AckFrame } from '../../../web/protocol.ts';

/** An outbox over a scripted request: each call waits until the test settles it. */
function scripted(ready = true) {
  const calls: {
    frame: OutgoingFrame;
    resolve: (a: AckFrame) => void;
    reject: (e: RealtimeError) => void;
  }[] = [];
  const host = {
    ready: () => ready,
    request: (frame: OutgoingFrame) =>
      new Promise<AckFrame>((resolve, reject) => calls.push({ frame, resolve, reject })),
  };
  const outbox = new Outbox(host);
  return {
    outbox,
    calls,
    setReady: (r: boolean) => {
      ready = r;
    },
  };
}

const frame = (key: string): OutgoingFrame => ({
  type: 'message',
  room: 'lobby',
  text: 'hi',
  idempotencyKey: key,
});
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('Outbox', () => {
  it('resolves on the ack with its reference, and forgets the message', async () => {
    const { outbox, calls } = scripted();
    const sent = outbox.add(frame('k1'));
    expect(outbox.size).toBe(1);
    calls[0]?.resolve({ type: 'ack', messageId: 'm1', epoch: 'e', seq: 4 } as AckFrame);
    await expect(sent).resolves.toEqual({ messageId: 'm1', epoch: 'e', seq: 4 });
    expect(outbox.size).toBe(0);
  });

  it('refuses a second message under a key that is on its way', async () => {
    const { outbox } = scripted();
    void outbox.add(frame('k1'));
    await expect(outbox.add(frame('k1'))).rejects.toMatchObject({ code: 'bad_request' });
    expect(outbox.size).toBe(1);
  });

  it('waits while not ready, and sends everything waiting on flush', async () => {
    const { outbox, calls, setReady } = scripted(false);
    void outbox.add(frame('k1'));
    void outbox.add(frame('k2'));
    expect(calls).toHaveLength(0);
    setReady(true);
    outbox.flush();
    expect(calls.map((c) => c.frame.idempotencyKey)).toEqual(['k1', 'k2']);
  });

  it('keeps a message whose socket dropped, and sends it again under the same key', async () => {
    const { outbox, calls } = scripted();
    const sent = outbox.add(frame('k1'));
    calls[0]?.reject(new RealtimeError('disconnected', 'the socket closed (code 1006)'));
    await flush();
    expect(outbox.size).toBe(1);
    outbox.flush();
    expect(calls[1]?.frame).toEqual(frame('k1'));
    calls[1]?.resolve({ type: 'ack', duplicate: true } as AckFrame);
    await expect(sent).resolves.toEqual({ duplicate: true });
  });

  it('sends again at once after a timeout', async () => {
    const { outbox, calls } = scripted();
    void outbox.add(frame('k1'));
    calls[0]?.reject(new RealtimeError('timeout', 'no reply'));
    await flush();
    expect(calls).toHaveLength(2);
  });

  it('ends a message refused by an error frame', async () => {
    const { outbox, calls } = scripted();
    const sent = outbox.add(frame('k1'));
    calls[0]?.reject(new RealtimeError('rate_limited', 'slow down', undefined, 2));
    await expect(sent).rejects.toMatchObject({ code: 'rate_limited', retryAfterS: 2 });
    expect(outbox.size).toBe(0);
  });

  it('fails every waiting message when the client stops, and a late ack changes nothing', async () => {
    const { outbox, calls } = scripted();
    const sent = outbox.add(frame('k1'));
    const stopped = new RealtimeError('disconnected', 'disconnected by the client');
    outbox.fail(stopped);
    await expect(sent).rejects.toBe(stopped);
    calls[0]?.resolve({ type: 'ack' } as AckFrame);
    await flush();
    expect(outbox.size).toBe(0);
  });
});
