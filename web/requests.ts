import { RealtimeError } from './errors.ts';
import { frameError } from './failure.ts';
import type { ClientFrame, ReplyOf, RequestId, ServerFrame } from './protocol.ts';

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(err: RealtimeError): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Request/reply matching: each request gets a fresh `id`, the reply that echoes it settles it
 * (an `error` reply rejects with its code), and a request without a reply in `timeoutMs`
 * rejects with `timeout`. Knows nothing of sockets: the caller sends.
 */
export class Requests {
  readonly #pending = new Map<RequestId, Pending>();
  #nextId = 0;

  constructor(readonly timeoutMs: number) {}

  /** Sends `frame` under a fresh id through `send`; resolves with its reply. */
  send<F extends ClientFrame>(frame: F, send: (frame: ClientFrame) => void): Promise<ReplyOf[F['type']]> {
    const id = `c${++this.#nextId}`;
    return new Promise<ReplyOf[F['type']]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RealtimeError('timeout', `no reply to ${frame.type} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#pending.set(id, { resolve: resolve as (f: ServerFrame) => void, reject, timer });
      send({ ...frame, id });
    });
  }

  /** Settles the request `frame` replies to: true, or false when it answers none (still) pending. */
  settle(frame: ServerFrame): boolean {
    const id = 'id' in frame ? frame.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (!pending || id === undefined) return false;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (frame.type === 'error') pending.reject(frameError(frame));
    else pending.resolve(frame);
    return true;
  }

  /** Every pending request fails with `reason` (its socket is gone). */
  failAll(reason: RealtimeError): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.#pending.clear();
  }
}
