import { RealtimeError } from './errors.ts';
import { asRealtimeError } from './failure.ts';
import type { AckFrame } from './protocol.ts';

/** What `send` resolves with: the message's reference in its room. */
export interface SendResult {
  messageId?: string;
  epoch?: string;
  seq?: number;
  /** The key was used before: this is the first message's reference. */
  duplicate?: boolean;
}

/** A chat message on its way: the frame as sent, every time, under its idempotency key. */
export type OutgoingFrame = {
  type: 'message';
  room: string;
  text?: string;
  data?: unknown;
  idempotencyKey: string;
};

interface Outgoing {
  readonly frame: OutgoingFrame;
  readonly resolve: (result: SendResult) => void;
  readonly reject: (err: RealtimeError) => void;
  sending?: boolean;
}

/** What the outbox needs of the client: whether it may send now, and the request itself. */
export interface OutboxHost {
  /** The socket is open and its rooms rejoined. */
  ready(): boolean;
  request(frame: OutgoingFrame): Promise<AckFrame>;
}

/**
 * Messages sent and not yet acknowledged. Each goes out when the socket is ready and again,
 * under the same key, after every reconnect and after a timeout, until the server
 * acknowledges it (or refuses it with an error frame): the room gets it once.
 */
export class Outbox {
  readonly #entries = new Map<string, Outgoing>();

  constructor(readonly host: OutboxHost) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Sends `frame` and resolves on its `ack`; refused when its key is already on its way. */
  add(frame: OutgoingFrame): Promise<SendResult> {
    if (this.#entries.has(frame.idempotencyKey)) {
      return Promise.reject(
        new RealtimeError('bad_request', 'a message with this idempotencyKey is on its way'),
      );
    }
    return new Promise<SendResult>((resolve, reject) => {
      const entry: Outgoing = { frame, resolve, reject };
      this.#entries.set(frame.idempotencyKey, entry);
      this.#transmit(entry);
    });
  }

  /** The socket is ready: every waiting message goes out. */
  flush(): void {
    for (const entry of this.#entries.values()) this.#transmit(entry);
  }

  /** The unacknowledged messages will not be sent: the client stopped. */
  fail(reason: RealtimeError): void {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const entry of entries) entry.reject(reason);
  }

  /** Sends one message if the socket is ready; otherwise the socket's opening does. */
  #transmit(entry: Outgoing): void {
    if (entry.sending || !this.host.ready()) return;
    entry.sending = true;
    const key = entry.frame.idempotencyKey;
    this.host.request(entry.frame).then(
      (ack) => {
        if (this.#entries.get(key) !== entry) return;
        this.#entries.delete(key);
        entry.resolve(resultOf(ack));
      },
      (err: unknown) => {
        entry.sending = false;
        if (this.#entries.get(key) !== entry) return;
        const e = asRealtimeError(err);
        // Sent again, under the same key, once there is a socket: the server keeps it to one.
        if (e.code === 'disconnected' || e.code === 'not_connected') return;
        if (e.code === 'timeout') return this.#transmit(entry);
        // Any error frame (`rate_limited` included: the person decides whether to wait) ends it.
        this.#entries.delete(key);
        entry.reject(e);
      },
    );
  }
}

function resultOf(ack: AckFrame): SendResult {
  return {
    ...(ack.messageId === undefined ? {} : { messageId: ack.messageId }),
    ...(ack.epoch === undefined ? {} : { epoch: ack.epoch }),
    ...(ack.seq === undefined ? {} : { seq: ack.seq }),
    ...(ack.duplicate ? { duplicate: true } : {}),
  };
}
