import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChatMessage } from '../../../web/protocol.ts';
import { Rooms, type RoomsHost } from '../../../web/rooms.ts';

const msg = (seq: number, room: string): ChatMessage => ({
  type: 'message',
  room,
  from: 'amy',
  text: `m${seq}`,
  ts: seq,
  messageId: `e1-${seq}`,
  epoch: 'e1',
  seq,
});

function rooms(): { rooms: Rooms; emitted: number[]; requests: unknown[] } {
  const emitted: number[] = [];
  const requests: unknown[] = [];
  const host = {
    request: async (frame: unknown) => {
      requests.push(frame);
      throw new Error('not asked in this test');
    },
    isOpen: () => true,
    emit: (event: string, value: unknown) => {
      if (event === 'message') emitted.push((value as ChatMessage).seq);
    },
  } as unknown as RoomsHost;
  return { rooms: new Rooms({ rejoinHistory: 50, gapWaitMs: 1000 }, host), emitted, requests };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Rooms', () => {
  it('hands over messages held after a skipped number in a room it never joined, once the wait is over', () => {
    vi.useFakeTimers();
    const { rooms: r, emitted, requests } = rooms();
    r.receive(msg(1, 'user:amy'));
    r.receive(msg(3, 'user:amy')); // 2 was numbered and never stored
    expect(emitted).toEqual([1]);
    vi.advanceTimersByTime(1000);
    expect(emitted).toEqual([1, 3]);
    // The room was never joined, so it is not asked (a join there would change membership).
    expect(requests).toEqual([]);
    r.receive(msg(4, 'user:amy'));
    expect(emitted).toEqual([1, 3, 4]);
  });
});
