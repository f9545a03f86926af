import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RealtimeError } from '../../../web/errors.ts';
import type { ClientFrame } from '../../../web/protocol.ts';
import { Requests } from '../../../web/requests.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('Requests', () => {
  it('sends each frame under a fresh id and resolves with the reply that echoes it', async () => {
    const requests = new Requests(1000);
    const out: ClientFrame[] = [];
    const first = requests.send({ type: 'ping' }, (f) => out.push(f));
    const second = requests.send({ type: 'whoami' }, (f) => out.push(f));
    expect(out.map((f) => f.id)).toEqual(['c1', 'c2']);
    expect(requests.settle({ type: 'identity', username: 'bob', roles: [], exp: 1, id: 'c2' } as never)).toBe(
      true,
    );
    expect(requests.settle({ type: 'pong', id: 'c1' } as never)).toBe(true);
    await expect(second).resolves.toMatchObject({ type: 'identity', id: 'c2' });
    await expect(first).resolves.toMatchObject({ type: 'pong', id: 'c1' });
  });

  it('rejects with the code of an error reply, retry_after as retryAfterS', async () => {
    const requests = new Requests(1000);
    const reply = requests.send({ type: 'ping' }, () => {});
    requests.settle({ type: 'error', code: 'rate_limited', message: 'slow down', retry_after: 3, id: 'c1' });
    await expect(reply).rejects.toMatchObject({ code: 'rate_limited', retryAfterS: 3, message: 'slow down' });
  });

  it('does not match frames without an id, with an unknown id, or answered already', () => {
    const requests = new Requests(1000);
    void requests.send({ type: 'ping' }, () => {});
    expect(requests.settle({ type: 'member_left', room: 'lobby', username: 'bob' } as never)).toBe(false);
    expect(requests.settle({ type: 'pong', id: 'c9' } as never)).toBe(false);
    expect(requests.settle({ type: 'pong', id: 'c1' } as never)).toBe(true);
    expect(requests.settle({ type: 'pong', id: 'c1' } as never)).toBe(false);
  });

  it('times a request out after timeoutMs, and a late reply then matches nothing', async () => {
    const requests = new Requests(500);
    const reply = requests.send({ type: 'join', room: 'lobby' }, () => {});
    const failed = expect(reply).rejects.toMatchObject({
      code: 'timeout',
      message: 'no reply to join within 500 ms',
    });
    vi.advanceTimersByTime(499);
    expect(requests.settle({ type: 'pong', id: 'other' } as never)).toBe(false);
    vi.advanceTimersByTime(1);
    await failed;
    expect(requests.settle({ type: 'joined', room: 'lobby', id: 'c1' } as never)).toBe(false);
  });

  it('fails every pending request when the socket goes, and none time out afterwards', async () => {
    const requests = new Requests(500);
    const a = requests.send({ type: 'ping' }, () => {});
    const b = requests.send({ type: 'whoami' }, () => {});
    const gone = new RealtimeError('disconnected', 'the socket closed (code 1006)');
    requests.failAll(gone);
    await expect(a).rejects.toBe(gone);
    await expect(b).rejects.toBe(gone);
    expect(vi.getTimerCount()).toBe(0);
    expect(requests.settle({ type: 'pong', id: 'c1' } as never)).toBe(false);
  });
});
