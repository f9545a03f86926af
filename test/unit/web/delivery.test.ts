import { describe, expect, it } from 'vitest';
import { DeliveryTracker } from '../../../web/delivery.ts';
import type { ChatMessage, JoinedFrame } from '../../../web/protocol.ts';

const ROOM = 'lobby';
const msg = (seq: number, epoch = 'e1', room = ROOM): ChatMessage => ({
  type: 'message',
  room,
  from: 'amy',
  text: `m${seq}`,
  ts: seq,
  messageId: `${epoch}-${seq}`,
  epoch,
  seq,
});
const joined = (seq: number, history: ChatMessage[] = [], extra: Partial<JoinedFrame> = {}): JoinedFrame => ({
  type: 'joined',
  room: ROOM,
  epoch: 'e1',
  seq,
  history,
  ...extra,
});
const seqs = (ms: readonly ChatMessage[]) => ms.map((m) => m.seq);

function trackerAt(seq: number): DeliveryTracker {
  const t = new DeliveryTracker();
  t.joined(ROOM, joined(seq));
  return t;
}

describe('DeliveryTracker', () => {
  it('gives up waiting in a room it cannot ask (never joined): the numbers missing up to the cutoff were skipped', () => {
    const t = new DeliveryTracker();
    const room = 'user:amy';
    expect(seqs(t.receive(msg(1, 'e1', room)))).toEqual([1]);
    expect(seqs(t.receive(msg(3, 'e1', room)))).toEqual([]); // 2 was numbered, never stored
    expect(seqs(t.receive(msg(5, 'e1', room)))).toEqual([]);
    expect(t.waiting(room)).toBe(true);
    // The wait began when 3 was the highest known: 2 is skipped, 3 handed over, 5 waits for 4.
    expect(seqs(t.skipTo(room, 3))).toEqual([3]);
    expect(t.waiting(room)).toBe(true);
    expect(seqs(t.receive(msg(4, 'e1', room)))).toEqual([4, 5]);
    expect(t.waiting(room)).toBe(false);
    expect(t.skipTo('other', 9)).toEqual([]);
  });

  it('hands over messages in seq order, holding one that arrives after a gap until the gap fills', () => {
    const t = trackerAt(0);
    expect(seqs(t.receive(msg(1)))).toEqual([1]);
    expect(seqs(t.receive(msg(3)))).toEqual([]);
    expect(t.waiting(ROOM)).toBe(true);
    expect(seqs(t.receive(msg(2)))).toEqual([2, 3]);
    expect(t.waiting(ROOM)).toBe(false);
    expect(t.position(ROOM)).toEqual({ epoch: 'e1', seq: 3 });
  });

  it('drops a message it already holds, live or in a recovered history', () => {
    const t = trackerAt(0);
    t.receive(msg(1));
    expect(t.receive(msg(1))).toEqual([]);
    const out = t.joined(ROOM, joined(2, [msg(1), msg(2)], { recovered: true }), { epoch: 'e1', seq: 0 }, 2);
    expect(seqs(out.emit)).toEqual([2]);
    expect(t.receive(msg(2))).toEqual([]);
  });

  it('treats numbers a recovered history lacks up to the cutoff as skipped, and holds the ones above it', () => {
    const t = trackerAt(0);
    t.receive(msg(1));
    t.receive(msg(4)); // 2 and 3 missing
    const out = t.joined(
      ROOM,
      joined(6, [msg(3), msg(4), msg(6)], { recovered: true }),
      { epoch: 'e1', seq: 1 },
      4,
    );
    // 2 was skipped (never stored); 6 waits, as 5 may still be on its way.
    expect(seqs(out.emit)).toEqual([3, 4]);
    expect(t.waiting(ROOM)).toBe(true);
    expect(seqs(t.receive(msg(5)))).toEqual([5, 6]);
  });

  it('still hands over, once, a message given up on that turns out late', () => {
    const t = trackerAt(0);
    t.receive(msg(2));
    t.joined(ROOM, joined(2, [msg(2)], { recovered: true }), { epoch: 'e1', seq: 0 }, 2);
    expect(seqs(t.receive(msg(1)))).toEqual([1]);
    expect(t.receive(msg(1))).toEqual([]);
  });

  it('reports a reset for recovered: false and starts again from the reply, handing over unseen history', () => {
    const t = trackerAt(0);
    t.receive(msg(1));
    const out = t.joined(
      ROOM,
      joined(9, [msg(1, 'e2'), msg(2, 'e2')], { recovered: false, epoch: 'e2' }),
      { epoch: 'e1', seq: 1 },
      1,
    );
    expect(out.reset).toBe(true);
    expect(out.emit.map((m) => m.messageId)).toEqual(['e2-1', 'e2-2']);
    expect(t.position(ROOM)).toEqual({ epoch: 'e2', seq: 9 });
  });

  it('follows a room whose numbering started over (a new epoch) without losing what it held', () => {
    const t = trackerAt(0);
    t.receive(msg(1));
    t.receive(msg(3)); // waiting for 2
    expect(t.receive(msg(1, 'e2')).map((m) => m.messageId)).toEqual(['e1-3', 'e2-1']);
    expect(t.position(ROOM)).toEqual({ epoch: 'e2', seq: 1 });
  });

  it('starts counting a room it never joined at its first message', () => {
    const t = new DeliveryTracker();
    expect(seqs(t.receive(msg(7, 'e1', 'user:amy')))).toEqual([7]);
    expect(t.position('user:amy')).toEqual({ epoch: 'e1', seq: 7 });
  });

  it('knows the room is behind when joined reports a later seq than it holds', () => {
    const t = trackerAt(0);
    t.joined(ROOM, joined(5));
    expect(t.waiting(ROOM)).toBe(true);
    expect(t.target(ROOM)).toBe(5);
  });
});
